//! What the packet lessons (41 on) must show, on any kernel and arch, beyond their
//! outcome and snapshot: called by `lessons.rs` for every lesson it has no check of its
//! own for.

use std::path::Path;

use bpflab::run::LessonResult;

use super::{outputs, reason};

/// Checks lesson `lesson.number` if it is a packet lesson; others pass untouched.
pub fn check(lesson: &LessonResult, where_: &str) {
    match lesson.number {
        41 => {
            // The kernel's copy of the classic program, disassembled, is tcpdump's listing
            // as the book shows it; both parts passed only the segments to TCP port 80.
            let captured = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../book/src/captured/tcpdump-tcp-dst-port-80.txt"),
            )
            .unwrap();
            let listing: Vec<&str> = outputs(lesson)
                .into_iter()
                .filter(|l| l.starts_with('('))
                .collect();
            assert_eq!(listing, captured.lines().collect::<Vec<_>>(), "{where_}");
            let reason = reason(lesson);
            assert!(
                reason.contains("classic: ")
                    && reason.contains("; extended: ")
                    && reason
                        .matches("segments to TCP port 80, twice each")
                        .count()
                        == 2,
                "{where_}: {reason}"
            );
        }
        4101 => {
            let reason = reason(lesson);
            assert!(
                reason.contains("segments sent to port 80, but not the")
                    && reason.contains("the server sent from it"),
                "{where_}: {reason}"
            );
        }
        411 => assert!(
            reason(lesson).starts_with("both sides of TCP port 80: "),
            "{where_}: {:?}",
            lesson.outcome
        ),
        42 => {
            // Each part on its own terms, on the exact traffic the workload sent; the
            // mode each program ran in is said, native or generic with the refusal.
            let reason = reason(lesson);
            assert!(
                reason
                    .contains("count: 11 frames counted and passed, as sent: ICMP 3, TCP 2, UDP 6")
                    && reason.contains("; drop: the 6 UDP datagrams dropped, none arrived")
                    && reason.contains(
                        "; tx: the 3 pings answered from XDP (XDP_TX), none by veth1's kernel"
                    ),
                "{where_}: {reason}"
            );
            let modes = outputs(lesson)
                .into_iter()
                .filter(|l| l.starts_with("attached `") && l.contains(" mode ("))
                .count();
            assert!(modes >= 3, "{where_}: every attachment names its mode");
        }
        4201 => assert!(
            reason(lesson).starts_with("not solved yet: the program drops all UDP"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        421 => assert!(
            reason(lesson)
                .starts_with("the 3 datagrams to UDP port 9 dropped, the 3 to port 4242 arrived"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        43 => {
            // Each part on its own terms, on the exact traffic the workload sent, and each
            // attachment says which of aya's two paths it took.
            let reason = reason(lesson);
            assert!(
                reason.contains("count: 16 packets out and the same 16 back in")
                    && reason.contains("ICMP 6 (588 bytes)")
                    && reason.contains("UDP 6 (444 bytes)")
                    && reason.contains("; drop: the 3 echo requests dropped at ingress")
                    && reason.contains(
                        "; rewrite: the 3 datagrams to port 9 rewritten at egress, all arrived \
                         at port 4243"
                    ),
                "{where_}: {reason}"
            );
            let paths = outputs(lesson)
                .into_iter()
                .filter(|l| {
                    l.starts_with("attached `")
                        && (l.contains(" through TCX: ") || l.contains(" through netlink: "))
                })
                .count();
            assert_eq!(paths, 6, "{where_}: every attachment names its path");
        }
        4301 => assert!(
            reason(lesson).starts_with("not solved yet: the program drops the echo requests too"),
            "{where_}: {:?}",
            lesson.outcome
        ),
        431 => assert!(
            reason(lesson).starts_with(
                "the 3 echo requests left and were answered by the kernel, the 3 replies dropped"
            ),
            "{where_}: {:?}",
            lesson.outcome
        ),
        _ => {}
    }
}
