//! The matrix's plan, cells, reports and their merge.

use super::*;

fn cell(kernel: &str, arch: &str, outcomes: &[Outcome], unavailable: Option<&str>) -> Cell {
    Cell {
        kernel: kernel.into(),
        arch: arch.into(),
        origin: None,
        release: Some(format!("{kernel}.0-test")),
        unavailable: unavailable.map(String::from),
        error: None,
        lessons: outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| CellLesson {
                lesson: i as u32 + 1,
                outcome: o.clone(),
                mistake: false,
                guest_s: None,
            })
            .collect(),
        features: None,
        boot_s: Some(2.0),
        run_s: Some(1.0),
        wall_s: 3.0,
    }
}

#[test]
fn merging_orders_cells_by_arch_then_series() {
    let a = Report {
        cells: vec![
            cell("6.1", "x86_64", &[], None),
            cell("5.10", "x86_64", &[], None),
        ],
    };
    let b = Report {
        cells: vec![
            cell("7.3-rc", "x86_64", &[], None),
            cell("5.4", "x86_64", &[], None),
        ],
    };
    let merged = Report::merge([a, b]);
    let order: Vec<&str> = merged.cells.iter().map(|c| c.kernel.as_str()).collect();
    assert_eq!(order, ["5.4", "5.10", "6.1", "7.3-rc"]);
}

#[test]
fn only_failed_lessons_fail_the_matrix() {
    let pass = Outcome::Passed("ok".into());
    let unsupported = Outcome::Unsupported("no symbol sys_clone".into());
    let report = Report {
        cells: vec![cell("6.1", "x86_64", &[pass.clone(), unsupported], None)],
    };
    assert!(report.ok());
    // A kernel that cannot be had here is reported, and fails nothing.
    let report = Report {
        cells: vec![cell(
            "4.4",
            "x86_64",
            &[],
            Some("no Ubuntu mirror configured"),
        )],
    };
    assert!(report.ok());
    // A cell that could not run is a failure.
    let mut broken = cell("6.1", "x86_64", &[], None);
    broken.error = Some("the guest never came up (TimedOut)".into());
    let report = Report {
        cells: vec![broken.clone()],
    };
    assert!(!report.ok());
    assert!(report
        .markdown()
        .contains("- 6.1 x86_64: error: the guest never came up"));
    let report = Report {
        cells: vec![cell("6.1", "x86_64", &[Outcome::Failed("x".into())], None)],
    };
    assert!(!report.ok());
}

#[test]
fn markdown_has_a_row_per_cell_and_explains_what_did_not_pass() {
    let report = Report {
        cells: vec![
            cell(
                "6.1",
                "x86_64",
                &[
                    Outcome::Passed("ok".into()),
                    Outcome::Unsupported("no symbol X\nmore".into()),
                ],
                None,
            ),
            cell("4.4", "arm64", &[], Some("no Debian package for 4.4")),
        ],
    };
    let md = report.markdown();
    assert!(
        md.contains("| 6.1 | x86_64 | 6.1.0-test | pass | unsupported | 2.0s | 1.0s |"),
        "{md}"
    );
    assert!(
        md.contains("| 4.4 | arm64 | 4.4.0-test | unavailable | unavailable |"),
        "{md}"
    );
    assert!(md.contains("- 6.1 x86_64 lesson 2: no symbol X\n"), "{md}");
    assert!(
        md.contains("- 4.4 arm64: unavailable: no Debian package for 4.4"),
        "{md}"
    );
}

#[test]
fn an_empty_merge_a_cell_without_results_and_missing_cells_are_gaps() {
    let whole = Report {
        cells: vec![
            cell("6.1", "x86_64", &[Outcome::Passed("ok".into())], None),
            cell("4.4", "arm64", &[], Some("no package")),
        ],
    };
    assert!(whole.gaps(None).is_empty());
    assert!(whole.gaps(Some(2)).is_empty());
    let gaps = whole.gaps(Some(3)).join("\n");
    assert!(gaps.contains("2 of the 3 expected cells arrived"), "{gaps}");
    // A cell counts once, however many shards carry it.
    let twice = Report::merge([whole.clone(), whole]);
    assert!(twice.gaps(Some(3)).join("").contains("2 of the 3"));

    let gaps = Report::default().gaps(None).join("\n");
    assert!(gaps.contains("no cells at all"), "{gaps}");
    let silent = Report {
        cells: vec![cell("6.1", "x86_64", &[], None)],
    };
    let gaps = silent.gaps(None).join("\n");
    assert!(
        gaps.contains("6.1 x86_64: no lesson results and no reason"),
        "{gaps}"
    );
}

#[test]
fn reports_round_trip_through_json() {
    let report = Report {
        cells: vec![cell("6.1", "x86_64", &[Outcome::Passed("ok".into())], None)],
    };
    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.cells.len(), 1);
    assert_eq!(back.markdown(), report.markdown());
}

#[test]
fn the_feature_table_has_a_row_per_booted_cell_and_says_what_each_feature_is() {
    let mut new = cell("6.1", "x86_64", &[], None);
    new.features = Some(vec![Feature::Kprobes, Feature::RingBuffer]);
    let mut old = cell("4.4", "x86_64", &[], None);
    old.features = Some(vec![Feature::Kprobes]);
    let never_up = cell("4.9", "x86_64", &[], Some("no kernel.org here"));
    let md = Report {
        cells: vec![old, new, never_up],
    }
    .features_markdown();
    let row = |kernel: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| {kernel} |")))
            .map(str::to_string)
    };
    let ring = Feature::ALL
        .iter()
        .position(|f| *f == Feature::RingBuffer)
        .unwrap();
    let column = |line: String| line.split(" | ").nth(2 + ring).map(str::to_string);
    assert_eq!(column(row("6.1").unwrap()).as_deref(), Some("✔"));
    assert_eq!(column(row("4.4").unwrap()).as_deref(), Some("✘"));
    assert_eq!(row("4.9"), None, "a cell that never booted has no row");
    assert!(md.contains("- `ring-buffer`: the BPF ring buffer (BPF_MAP_TYPE_RINGBUF); Linux 5.8"));
}

#[test]
fn a_mistake_passes_only_when_refused_for_its_reason() {
    let request = MatrixRequest {
        kernels: vec![],
        arches: vec![],
        lessons: vec![92],
        mistakes: [(92, vec!["unbounded memory access".to_string()])].into(),
        jobs: 1,
        accel: AccelRequest::Auto,
        timeout: Duration::from_secs(1),
    };
    let verdict = |o: Outcome| judged(&request, 92, o);
    let refused = verdict(Outcome::Failed(
        "the kernel rejected `f`: R1 unbounded memory access, make sure to bounds check".into(),
    ));
    assert!(matches!(refused.outcome, Outcome::Passed(_)) && refused.mistake);
    let other = verdict(Outcome::Failed(
        "the kernel rejected `f`: invalid mem access".into(),
    ));
    assert!(other
        .outcome
        .reason()
        .starts_with("refused, but not for its reason"));
    let accepted = verdict(Outcome::Passed("loaded".into()));
    assert!(matches!(accepted.outcome, Outcome::Failed(_)));
    let unsupported = verdict(Outcome::Unsupported("no kprobes".into()));
    assert_eq!(
        unsupported.outcome,
        Outcome::Unsupported("no kprobes".into())
    );
    // Any other lesson is as it ended.
    assert!(!judged(&request, 1, Outcome::Passed("ok".into())).mistake);
    let md = Report {
        cells: vec![Cell {
            lessons: vec![refused],
            ..cell("6.1", "x86_64", &[], None)
        }],
    }
    .markdown();
    assert!(md.contains("| refused |"), "{md}");
}

#[test]
fn a_lesson_s_guest_seconds_come_from_its_end_event_and_stay_out_of_json_when_unknown() {
    let events = [
        Event::Trace {
            lesson: 1,
            line: "Hello World!!".into(),
        },
        Event::LessonEnd {
            lesson: 1,
            outcome: Outcome::Passed("3 greetings".into()),
            elapsed_ms: 1250,
        },
    ];
    assert_eq!(guest_seconds(&events), Some(1.25));
    // A guest that never finished the lesson sent no end event.
    assert_eq!(guest_seconds(&events[..1]), None);
    let request = MatrixRequest {
        kernels: vec![],
        arches: vec![],
        lessons: vec![1],
        mistakes: Default::default(),
        jobs: 1,
        accel: AccelRequest::Auto,
        timeout: Duration::from_secs(1),
    };
    let unknown = judged(&request, 1, Outcome::Passed("ok".into()));
    let json = serde_json::to_string(&unknown).unwrap();
    assert!(!json.contains("guest_s"), "{json}");
    let back: CellLesson = serde_json::from_str(&json).unwrap();
    assert_eq!(back.guest_s, None);
}
