//! The matrix report as Markdown: the lesson table (a row per cell) and the feature table
//! (what each booted kernel has, as its guest probed it).

use bpflab_protocol::{Feature, Outcome};

use super::{first_line, Report};

impl Report {
    /// The table as Markdown: a row per cell, a column per lesson, then the reasons.
    pub fn markdown(&self) -> String {
        let lessons = self.lesson_numbers();
        let mut out = String::from("| kernel | arch | booted | ");
        for n in &lessons {
            out.push_str(&format!("lesson {n} | "));
        }
        out.push_str("boot | run |\n|---|---|---|");
        out.push_str(&"---|".repeat(lessons.len() + 2));
        out.push('\n');
        let mut notes = Vec::new();
        for c in &self.cells {
            out.push_str(&format!(
                "| {} | {} | {} | ",
                c.kernel,
                c.arch,
                c.release.as_deref().unwrap_or("-")
            ));
            for n in &lessons {
                let word = match (c.stopped(), c.lessons.iter().find(|l| l.lesson == *n)) {
                    (Some((word, _)), _) => word.to_string(),
                    (None, Some(l)) if l.mistake && matches!(l.outcome, Outcome::Passed(_)) => {
                        "refused".to_string()
                    }
                    (None, Some(l)) => l.outcome.word().to_string(),
                    (None, None) => "-".to_string(),
                };
                out.push_str(&format!("{word} | "));
                if let Some(l) = c.lessons.iter().find(|l| l.lesson == *n) {
                    if !matches!(l.outcome, Outcome::Passed(_)) {
                        notes.push(format!(
                            "{} {} lesson {n}: {}",
                            c.kernel,
                            c.arch,
                            first_line(l.outcome.reason())
                        ));
                    }
                }
            }
            let secs = |s: Option<f64>| s.map(|s| format!("{s:.1}s")).unwrap_or_else(|| "-".into());
            out.push_str(&format!("{} | {} |\n", secs(c.boot_s), secs(c.run_s)));
            if let Some((word, why)) = c.stopped() {
                notes.push(format!(
                    "{} {}: {word}: {}",
                    c.kernel,
                    c.arch,
                    first_line(why)
                ));
            }
        }
        if !notes.is_empty() {
            out.push('\n');
            for n in notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }

    /// The kernel features each booted cell has, as the guest probed them: a row per
    /// cell, a column per feature (✔ present, ✘ absent), then what each feature is and the
    /// version that brought it. Cells that never came up are left out.
    pub fn features_markdown(&self) -> String {
        let mut out = String::from("| kernel | arch | ");
        for f in Feature::ALL {
            out.push_str(&format!("{} | ", f.name()));
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(Feature::ALL.len()));
        out.push('\n');
        for c in &self.cells {
            let Some(present) = &c.features else { continue };
            out.push_str(&format!("| {} | {} | ", c.kernel, c.arch));
            for f in Feature::ALL {
                out.push_str(if present.contains(&f) {
                    "✔ | "
                } else {
                    "✘ | "
                });
            }
            out.push('\n');
        }
        out.push('\n');
        for f in Feature::ALL {
            out.push_str(&format!(
                "- `{}`: {}; Linux {}\n",
                f.name(),
                f.what(),
                f.since()
            ));
        }
        out
    }
}
