//! The lessons in the source tree: each directory under `lessons/` with a `lesson.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use bpflab_protocol::{Feature, Outcome};
use serde::Deserialize;

/// A lesson as described by its `lesson.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    /// Number the learner types.
    pub number: u32,
    /// Short name.
    pub name: String,
    /// One-line title.
    pub title: String,
    /// C sources of the kernel side, relative to the lesson directory.
    pub programs: Vec<String>,
    /// Rust crates of the kernel side (aya-ebpf), relative to the lesson directory: each
    /// is built for the eBPF target into `<crate dir>.bpf.o`.
    #[serde(default)]
    pub rust_programs: Vec<String>,
    /// Named parts the learner can pick with `--part` (empty: the lesson has one part).
    #[serde(default)]
    pub parts: Vec<String>,
    /// What the lesson's normalised output legitimately depends on, and so how many
    /// snapshots it has: one for all (`shared`), one per arch, one per kernel and arch,
    /// or none (output too specific to pin down, e.g. a verifier log; the tests check
    /// its content instead).
    #[serde(default)]
    pub snapshot: SnapshotVariation,
    /// Show each run of (normalised) output lines as its distinct lines, sorted, in the
    /// snapshot: for output whose number and order of lines depend on the kernel's
    /// internal caches and hashes, not on the lesson.
    #[serde(default)]
    pub snapshot_collapse: bool,
    /// What it is for the learner, and so where it is listed and what the tests expect.
    pub kind: Kind,
    /// What the whole lesson needs of the kernel (`needs = ["kprobes"]`): the guest probes
    /// each before the lesson runs and reports it unsupported, naming the feature, where
    /// one is missing.
    #[serde(default)]
    pub needs: Vec<Feature>,
    /// What a part needs besides (`[part_needs]`, `latency = ["core-btf"]`), probed when
    /// that part starts.
    #[serde(default)]
    pub part_needs: BTreeMap<String, Vec<Feature>>,
    /// Programs the lesson runs in the guest besides its own (`guest_tools = ["bpftool"]`):
    /// put in the initramfs for it (with `--shell` they are there anyway).
    #[serde(default)]
    pub guest_tools: Vec<GuestTool>,
    /// For a mistake the kernel refuses: what its answer must say (any one of these, as
    /// kernels word it differently), so that a refusal for another reason is caught.
    #[serde(default)]
    pub rejected_for: Vec<String>,
    /// Who refuses a mistake: the kernel (its verifier or loader, in the guest), or clang
    /// on the host, before any kernel sees the program (`refused_by = "clang"`).
    #[serde(default)]
    pub refused_by: RefusedBy,
    /// Kernel modules the lesson needs (`kernel_modules = ["veth"]`): where the booted
    /// kernel builds one as a module, bpflab takes it from the kernel's own package and
    /// the guest loads it before the lesson runs.
    #[serde(default)]
    pub kernel_modules: Vec<String>,
    /// The lesson talks over the guest's loopback interface (127.0.0.1), which the guest
    /// brings up before it runs (`loopback = true`); without it `lo` stays down.
    #[serde(default)]
    pub loopback: bool,
    /// The lesson's directory (filled in on discovery).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// See [`Lesson::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A lesson of the book; it passes.
    Lesson,
    /// The solution of one of the book's exercises; it passes too.
    Solution,
    /// An exercise's starting point, for the learner to change: it runs as shipped, and
    /// its check fails, saying what is not done yet ("not solved yet: …"), until the
    /// learner's change makes it pass. Listed apart, and not part of the matrix.
    Exercise,
    /// A mistake to learn from: it fails (or is unsupported) on purpose, with the error
    /// the learner is meant to read. Listed apart; in the matrix when it names what the
    /// refusal must say (`rejected_for`), and judged by that.
    Mistake,
    /// A test fixture, not for learners: it runs like a lesson (`bpflab lesson N`) for
    /// bpflab's own tests, but lists of lessons leave it out.
    Fixture,
}

impl Kind {
    /// Whether a run of it should pass: lessons and solutions do; mistakes fail on
    /// purpose, exercises until they are solved, and fixtures do whatever their test
    /// needs.
    pub fn passes(self) -> bool {
        matches!(self, Kind::Lesson | Kind::Solution)
    }
}

/// See [`Lesson::guest_tools`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestTool {
    /// Debian's bpftool, at `/usr/sbin/bpftool`.
    Bpftool,
}

/// See [`Lesson::refused_by`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefusedBy {
    /// The guest kernel: the lesson boots and its load is refused there.
    #[default]
    Kernel,
    /// The compiler: the lesson never reaches a guest; clang's error is its outcome.
    Clang,
}

/// See [`Lesson::snapshot`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotVariation {
    /// The same output everywhere.
    #[default]
    Shared,
    /// Differs by architecture (e.g. the probed symbol's name).
    Arch,
    /// Differs by kernel and architecture.
    Kernel,
    /// Not snapshotted.
    None,
}

impl Lesson {
    /// The snapshot name for a run on `series`/`arch`, if the lesson has snapshots.
    pub fn snapshot_name(&self, series: &str, arch: &str) -> Option<String> {
        let n = self.number;
        match self.snapshot {
            SnapshotVariation::Shared => Some(format!("lesson{n}")),
            SnapshotVariation::Arch => Some(format!("lesson{n}-{arch}")),
            SnapshotVariation::Kernel => Some(format!("lesson{n}-{series}-{arch}")),
            SnapshotVariation::None => None,
        }
    }

    /// The directory's name (`01-hello`), also its name inside the guest.
    pub fn dir_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Whether `outcome` is the refusal a mistake teaches: the kernel (or loader) said no, in
/// words containing one of `rejected_for`. `Ok` names the words found; `Err` says what
/// happened instead.
pub fn refused_for(rejected_for: &[String], outcome: &Outcome) -> Result<String, String> {
    let expected = rejected_for
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(" or ");
    match outcome {
        Outcome::Failed(reason) => rejected_for
            .iter()
            .find(|r| reason.contains(r.as_str()))
            .cloned()
            .ok_or_else(|| {
                format!(
                    "refused, but not for its reason ({expected}): {}",
                    reason.lines().next().unwrap_or("")
                )
            }),
        Outcome::Passed(reason) => Err(format!(
            "a mistake the kernel accepted (expected a refusal for {expected}): {reason}"
        )),
        Outcome::Unsupported(reason) => Err(format!("unsupported: {reason}")),
    }
}

/// Finds every lesson below `root`, ordered by number.
pub fn discover(root: &Path) -> anyhow::Result<Vec<Lesson>> {
    let mut lessons = Vec::new();
    for entry in walkdir::WalkDir::new(root).min_depth(2).max_depth(2) {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        if entry.file_name() != "lesson.toml" {
            continue;
        }
        let path = entry.path();
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lesson: Lesson =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        lesson.dir = path.parent().expect("file has a parent").to_path_buf();
        if let Some(part) = lesson.part_needs.keys().find(|p| !lesson.parts.contains(p)) {
            bail!(
                "in {}: `part_needs` names the part `{part}`, which is not in `parts` ({})",
                path.display(),
                lesson.parts.join(", ")
            );
        }
        if let Some(name) = lesson
            .kernel_modules
            .iter()
            .find(|m| crate::kernel::modules::known(m).is_none())
        {
            let known: Vec<&str> = crate::kernel::modules::KNOWN
                .iter()
                .map(|m| m.name)
                .collect();
            bail!(
                "in {}: `kernel_modules` names `{name}`, which bpflab does not know how to take                  from a kernel's package (it knows: {})",
                path.display(),
                known.join(", ")
            );
        }
        if !lesson.rejected_for.is_empty() && lesson.kind != Kind::Mistake {
            bail!(
                "in {}: `rejected_for` is for mistakes (kind = \"mistake\"), not a {:?}",
                path.display(),
                lesson.kind
            );
        }
        if lesson.refused_by == RefusedBy::Clang && lesson.rejected_for.is_empty() {
            bail!(
                "in {}: a mistake clang refuses (refused_by = \"clang\") names what clang's \
                 error must say (rejected_for)",
                path.display()
            );
        }
        lessons.push(lesson);
    }
    lessons.sort_by_key(|l| l.number);
    for pair in lessons.windows(2) {
        if pair[0].number == pair[1].number {
            bail!(
                "lessons {} and {} both have number {}",
                pair[0].dir.display(),
                pair[1].dir.display(),
                pair[0].number
            );
        }
    }
    Ok(lessons)
}

/// Picks lesson `number`, or explains which exist.
pub fn find(lessons: &[Lesson], number: u32) -> anyhow::Result<&Lesson> {
    lessons
        .iter()
        .find(|l| l.number == number)
        .with_context(|| {
            let known: Vec<String> = lessons
                .iter()
                .filter(|l| l.kind != Kind::Fixture)
                .map(|l| format!("{} ({})", l.number, l.name))
                .collect();
            format!(
                "there is no lesson {number}; lessons are: {} (`bpflab lessons` lists them)",
                known.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_lessons_of_the_source_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lessons");
        let lessons = discover(&root).unwrap();
        let hello = find(&lessons, 1).unwrap();
        assert_eq!(hello.name, "hello");
        assert_eq!(hello.dir_name(), "01-hello");
        assert!(hello.dir.join(&hello.programs[0]).is_file());
    }

    #[test]
    fn snapshot_names_follow_what_the_output_depends_on() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lessons");
        let lessons = discover(&root).unwrap();
        let name = |n| find(&lessons, n).unwrap().snapshot_name("6.1", "arm64");
        assert_eq!(name(1).as_deref(), Some("lesson1-arm64"));
        assert_eq!(name(2).as_deref(), Some("lesson2"));
        assert_eq!(name(3).as_deref(), Some("lesson3-6.1-arm64"));
        assert_eq!(name(90).as_deref(), Some("lesson90-6.1-arm64"));
    }

    #[test]
    fn kinds_come_from_lesson_toml() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lessons");
        let lessons = discover(&root).unwrap();
        let kind = |n| find(&lessons, n).unwrap().kind;
        assert_eq!(kind(1), Kind::Lesson);
        assert_eq!(kind(11), Kind::Solution);
        assert_eq!(kind(90), Kind::Mistake);
        assert_eq!(kind(95), Kind::Fixture);
        assert_eq!(kind(102), Kind::Exercise);
        assert!(kind(31).passes() && !kind(91).passes() && !kind(95).passes());
        assert!(!kind(102).passes(), "an exercise fails until it is solved");
    }

    #[test]
    fn an_unknown_number_lists_the_known_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lessons");
        let lessons = discover(&root).unwrap();
        let err = find(&lessons, 99).unwrap_err().to_string();
        assert!(
            err.contains("no lesson 99") && err.contains("1 (hello)"),
            "{err}"
        );
        assert!(!err.contains("hostile"), "fixtures are not lessons: {err}");
    }

    #[test]
    fn a_lesson_says_loopback_true_exactly_when_it_talks_over_127_0_0_1() {
        // The guest leaves `lo` down for the others, and a matrix boot would not show a
        // missing declaration: once a lesson brings `lo` up, the next ones find it up.
        // What a user side talks over 127.0.0.1 with: the address, or the guest's helpers
        // that use it (harness/guest/src/traffic.rs and workload.rs).
        const MARKS: [&str; 5] = [
            "127.0.0.1",
            "LOCALHOST",
            "tcp_exchange(",
            "udp_datagrams(",
            "TcpConversation::",
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lessons");
        let talks = |dir: &Path| {
            walkdir::WalkDir::new(dir.join("src"))
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
                .any(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap();
                    MARKS.iter().any(|mark| text.contains(mark))
                })
        };
        // A lesson's directory and those of the lessons whose crates it builds on, in turn.
        let built_on = |dir: &Path| {
            let mut dirs = vec![dir.to_path_buf()];
            let mut next = 0;
            while let Some(dir) = dirs.get(next).cloned() {
                next += 1;
                let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
                let manifest: toml::Table = toml::from_str(&text).unwrap();
                let paths = manifest["dependencies"]
                    .as_table()
                    .into_iter()
                    .flat_map(|deps| deps.values())
                    .filter_map(|dep| dep.get("path")?.as_str());
                for path in paths {
                    // A lesson's crates lie beside it; the guest library is not a lesson.
                    let used = dir.join(path);
                    if used.join("lesson.toml").is_file() && !dirs.contains(&used) {
                        dirs.push(used);
                    }
                }
            }
            dirs
        };
        for lesson in discover(&root).unwrap() {
            let uses = built_on(&lesson.dir).iter().any(|dir| talks(dir));
            assert_eq!(
                uses,
                lesson.loopback,
                "lessons/{}: {}",
                lesson.dir_name(),
                match uses {
                    true => "talks over 127.0.0.1: add `loopback = true` to its lesson.toml",
                    false => "says `loopback = true` but opens nothing on 127.0.0.1",
                }
            );
        }
    }
}
