//! Tools bpflab brings itself, for real: in a private mount namespace where the host's
//! QEMU, clang, LLVM, libbpf's headers and the arm64 kernel headers are hidden (empty
//! file systems and /dev/null mounted over them), lesson 1 passes on x86-64 and arm64
//! guests with what bpflab unpacked from Debian's archive, and a run after them
//! downloads nothing.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

/// Hides the host's tools, puts an empty directory (`$PROVISION`) where bpflab keeps the
/// tools it unpacks, checks that nothing of the tools is left visible (exit 98 if it is),
/// then runs the command.
const HIDE: &str = r#"set -e
for f in /usr/bin/qemu-system-* /usr/lib/*-linux-gnu/libLLVM* /usr/lib/*-linux-gnu/libclang*; do
    t=$(realpath -e "$f" 2>/dev/null) || continue
    if [ -f "$t" ]; then mount --bind /dev/null "$t"; fi
done
for d in /usr/lib/llvm-* /usr/share/qemu /usr/share/seabios /usr/lib/ipxe /usr/include/bpf \
    /usr/aarch64-linux-gnu/include; do
    if [ -d "$d" ]; then mount -t tmpfs bpflab-hidden "$d"; fi
done
mkdir -p "$BPFLAB_CACHE/provision"
mount --bind "$PROVISION" "$BPFLAB_CACHE/provision"
for tool in clang clang-14 llc qemu-system-x86_64 qemu-system-aarch64; do
    if command -v "$tool" >/dev/null; then echo "still visible: $tool" >&2; exit 98; fi
done
for header in /usr/include/bpf/bpf_helpers.h /usr/aarch64-linux-gnu/include/asm/ptrace.h; do
    if [ -e "$header" ]; then echo "still visible: $header" >&2; exit 98; fi
done
set +e
exec "$@""#;

/// Runs bpflab with `args` in a namespace where the host's tools are hidden.
fn hidden_tools_bpflab(provision: &Path, args: &[&str]) -> (Output, String) {
    hidden_tools_run(provision, args, true)
}

/// [`hidden_tools_bpflab`], with provisioning on or off; returns what bpflab printed.
fn hidden_tools_run(provision: &Path, args: &[&str], provisioning: bool) -> (Output, String) {
    let cache = bpflab::config::Config::load().unwrap().cache_dir;
    let namespace = bpflab::tools::private_mount_namespace().unwrap();
    let mut command = Command::new(&namespace[0]);
    command
        .args(&namespace[1..])
        .args(["sh", "-c", HIDE, "hide"])
        .arg(env!("CARGO_BIN_EXE_bpflab"))
        .args(args)
        .env("BPFLAB_CACHE", &cache)
        .env("PROVISION", provision);
    match provisioning {
        true => command.env_remove("BPFLAB_NO_PROVISION"),
        false => command.env("BPFLAB_NO_PROVISION", "1"),
    };
    let output = command.output().expect("unshare (util-linux) is needed");
    // bpflab's status lines (stderr), then the lesson's view (stdout).
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    assert_ne!(
        output.status.code(),
        Some(98),
        "the tools are not hidden: {text}"
    );
    (output, text)
}

#[test]
fn lesson_1_passes_with_the_tools_bpflab_unpacked_and_then_downloads_nothing() {
    let provision = tempfile::tempdir().unwrap();

    // x86-64, nothing unpacked yet: QEMU, clang and libbpf's headers come from Debian.
    let (out, first) = hidden_tools_bpflab(provision.path(), &["lesson", "1"]);
    assert!(out.status.success(), "{first}");
    for needle in [
        "provisioned QEMU for x86_64 guests",
        "provisioned clang",
        "provisioned libbpf's headers",
        "✔ lesson 1 passed",
    ] {
        assert!(first.contains(needle), "no {needle:?} in:\n{first}");
    }

    // arm64: its QEMU and kernel headers are unpacked; clang is the one unpacked above.
    let (out, arm64) = hidden_tools_bpflab(provision.path(), &["lesson", "1", "--arch", "arm64"]);
    assert!(out.status.success(), "{arm64}");
    for needle in [
        "provisioned QEMU for arm64 guests",
        "provisioned arm64 kernel headers",
        "clang (C → BPF objects): from bpflab's cache",
        "kprobe attached to __arm64_sys_clone",
        "✔ lesson 1 passed",
    ] {
        assert!(arm64.contains(needle), "no {needle:?} in:\n{arm64}");
    }
    assert!(!arm64.contains("provisioned clang"), "{arm64}");

    // x86-64 again: everything from the cache, nothing downloaded.
    let (out, again) = hidden_tools_bpflab(provision.path(), &["lesson", "1"]);
    assert!(out.status.success(), "{again}");
    assert!(!again.contains("provisioned"), "{again}");
    assert!(!again.contains("downloaded"), "{again}");
    for needle in [
        "QEMU for x86_64 guests (qemu-system-x86_64): from bpflab's cache",
        "clang (C → BPF objects): from bpflab's cache",
        "libbpf's headers (bpf/bpf_helpers.h): from bpflab's cache",
    ] {
        assert!(again.contains(needle), "no {needle:?} in:\n{again}");
    }

    // And doctor, in the same hiding, says where each comes from.
    let (out, _) = hidden_tools_bpflab(provision.path(), &["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    // The host's tools come first; the guest's (bpftool) after "for the guest".
    let host_tools = report.split("for the guest").next().unwrap_or_default();
    let cached = host_tools
        .lines()
        .filter(|l| l.starts_with("    bpflab's") && l.contains(": /"))
        .count();
    assert_eq!(
        cached, 5,
        "QEMU ×2, clang, libbpf's headers, arm64 headers:\n{report}"
    );
}

/// With provisioning off, a missing tool is an error that names the package to install.
#[test]
fn with_provisioning_off_a_missing_tool_names_its_package() {
    let provision = tempfile::tempdir().unwrap();
    let (output, stderr) = hidden_tools_run(provision.path(), &["lesson", "1"], false);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("install it with: sudo apt-get install qemu-system-x86")
            && stderr.contains("BPFLAB_NO_PROVISION is set"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(provision.path()).unwrap().count(), 0);
}
