//! `bpflab bench --peers`: bpflab side by side with vmtest and virtme-ng, on one kernel
//! image, on this machine, in one run.
//!
//! Each round runs the three one after the other, each as a fresh process timed from
//! spawn to exit: bpflab runs lesson 1 (boot, load, attach, trace, power off); the peers
//! run `true`, which is less work. The machine is noisy, so the report is the ratio
//! within each round (same minute, same load) and the median over rounds, never one
//! absolute time.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::vm::accel::Accel;
use crate::{term, tools};

/// A program timed against bpflab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Peer {
    /// vmtest (crates.io): the host's root over 9p, commands through qemu-guest-agent.
    Vmtest,
    /// virtme-ng (PyPI): the host's root over 9p (forced; virtiofs needs a daemon).
    VirtmeNg,
}

impl Peer {
    /// Both peers, in the order each round runs them.
    pub const ALL: [Peer; 2] = [Peer::Vmtest, Peer::VirtmeNg];

    /// Name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Vmtest => "vmtest",
            Peer::VirtmeNg => "virtme-ng",
        }
    }

    /// The command that boots `kernel` and runs `true` in it, or why it cannot run here.
    pub fn command(self, kernel: &Path, accel: Accel) -> Result<Command, String> {
        match self {
            Peer::Vmtest => {
                let vmtest = find("vmtest", "cargo install vmtest")?;
                // vmtest's guest runs the host's qemu-ga to take commands.
                if !Path::new("/usr/bin/qemu-ga").exists() && tools::which("qemu-ga").is_none() {
                    return Err(
                        "qemu-ga is not installed (sudo apt-get install qemu-guest-agent)".into(),
                    );
                }
                let mut args = vec![
                    vmtest.into_os_string(),
                    "--kernel".into(),
                    kernel.as_os_str().to_owned(),
                    "true".into(),
                ];
                // vmtest uses KVM whenever /dev/kvm exists; where KVM is unusable it must
                // not see the device at all.
                if accel == Accel::Tcg && Path::new("/dev/kvm").exists() {
                    let mut wrapped = hide_kvm_prefix()?;
                    wrapped.append(&mut args);
                    args = wrapped;
                }
                let mut cmd = Command::new(&args[0]);
                cmd.args(&args[1..]).env("VMTEST_NO_UI", "1");
                Ok(cmd)
            }
            Peer::VirtmeNg => {
                let vng = find("vng", "pip install virtme-ng")?;
                // Without udev in the guest (the host's, shared), virtme-ng cannot find its
                // virtio-serial ports and loses the command's exit status.
                let udevd = [
                    "/usr/lib/systemd/systemd-udevd",
                    "/lib/systemd/systemd-udevd",
                ];
                if !udevd.iter().any(|p| Path::new(p).exists()) {
                    return Err(
                        "virtme-ng needs udev on the host (sudo apt-get install udev)".into(),
                    );
                }
                let mut cmd = Command::new(vng);
                cmd.arg("--run")
                    .arg(kernel)
                    .args(["--force-9p", "--exec", "true"]);
                if accel == Accel::Tcg {
                    cmd.arg("--disable-kvm");
                }
                Ok(cmd)
            }
        }
    }
}

fn find(program: &str, install: &str) -> Result<PathBuf, String> {
    tools::which(program).ok_or_else(|| format!("{program} is not installed ({install})"))
}

/// A private mount namespace whose /dev holds the usual device nodes but not `kvm`
/// (binding /dev/null over /dev/kvm is not enough: the peers test for the node's type).
/// Without root, an unprivileged user namespace provides the mount namespace.
fn hide_kvm_prefix() -> Result<Vec<std::ffi::OsString>, String> {
    const SCRIPT: &str = r#"set -e
d=$(mktemp -d)
mount -t tmpfs -o mode=755 bpflab-dev "$d"
for n in null zero full random urandom tty ptmx console; do
  [ -e "/dev/$n" ] || continue
  touch "$d/$n"
  mount --bind "/dev/$n" "$d/$n"
done
mkdir "$d/pts" "$d/shm"
mount --bind /dev/pts "$d/pts"
mount --move "$d" /dev
rmdir "$d"
exec "$@""#;
    let mut args = tools::private_mount_namespace().map_err(|e| format!("{e:#}"))?;
    args.extend(["sh".into(), "-c".into(), SCRIPT.into(), "sh".into()]);
    Ok(args)
}

/// Runs `cmd` to completion and returns its wall time in seconds; its output is kept for
/// the error if it fails.
pub fn time(mut cmd: Command, what: &str) -> anyhow::Result<f64> {
    crate::interrupt::check()?;
    let start = Instant::now();
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {what}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !output.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        bail!(
            "{what} failed ({}); its last lines:\n  {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
        );
    }
    Ok(seconds)
}

/// Times bpflab's lesson 1 and each peer's `true` on `image`, in turns: a first untimed
/// round (it fills caches and shows which peers can run here), then `rounds` timed ones.
pub fn compare(
    image: &Path,
    bpflab_boots: String,
    accel: Accel,
    rounds: usize,
) -> anyhow::Result<PeerReport> {
    let bpflab = || {
        let mut cmd = Command::new(std::env::current_exe().expect("own path"));
        cmd.args(["lesson", "1", "--kernel"])
            .arg(image)
            .args(["--accel", &accel.to_string().to_lowercase()]);
        cmd
    };
    term::status(format!(
        "side by side on {}: a first untimed round",
        image.display()
    ));
    time(bpflab(), "bpflab lesson 1")?;
    let mut skipped = Vec::new();
    let mut usable = Vec::new();
    for peer in Peer::ALL {
        let outcome = peer
            .command(image, accel)
            .map_err(anyhow::Error::msg)
            .and_then(|cmd| time(cmd, peer.name()));
        match outcome {
            Ok(_) => usable.push(peer),
            Err(e) => {
                term::status(format!("{} will not be compared: {e:#}", peer.name()));
                skipped.push((peer.name().to_string(), format!("{e:#}")));
            }
        }
    }
    let mut report = PeerReport {
        kernel: image.display().to_string(),
        bpflab_boots,
        accel: accel.to_string(),
        skipped,
        rounds: Vec::new(),
    };
    for n in 0..rounds {
        term::status(format!("side by side, round {}/{rounds}", n + 1));
        let bpflab = time(bpflab(), "bpflab lesson 1")?;
        let mut peers = Vec::new();
        for peer in Peer::ALL {
            peers.push(match usable.contains(&peer) {
                true => Some(time(
                    peer.command(image, accel).map_err(anyhow::Error::msg)?,
                    peer.name(),
                )?),
                false => None,
            });
        }
        report.rounds.push(Round { bpflab, peers });
    }
    Ok(report)
}

/// One round: bpflab's time and each peer's, in seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// bpflab, lesson 1, spawn to exit.
    pub bpflab: f64,
    /// Each peer's time for `true`, in [`Peer::ALL`] order; `None` if it did not run.
    pub peers: Vec<Option<f64>>,
}

/// The side-by-side figures.
#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    /// The kernel image all of them were given.
    pub kernel: String,
    /// What bpflab booted of it: the file, or the vmlinux inside a bzImage, through PVH.
    pub bpflab_boots: String,
    /// KVM or TCG, for all of them.
    pub accel: String,
    /// Peers that could not run, with the reason.
    pub skipped: Vec<(String, String)>,
    /// The rounds.
    pub rounds: Vec<Round>,
}

/// The median of the finite values (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The table: each round's times and bpflab/peer ratios, then the medians.
pub fn table(report: &PeerReport) -> String {
    let mut out = format!(
        "bpflab `lesson 1` vs peers running `true`, same kernel ({}), {}, {} rounds\n\n",
        report.kernel,
        report.accel,
        report.rounds.len()
    );
    if report.bpflab_boots != report.kernel {
        out.push_str(&format!(
            "bpflab booted {}; the peers booted the file as given.\n\n",
            report.bpflab_boots
        ));
    }
    let ran: Vec<(usize, Peer)> = Peer::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| report.rounds.iter().any(|r| r.peers[*i].is_some()))
        .collect();
    out.push_str("| round | bpflab |");
    for (_, peer) in &ran {
        out.push_str(&format!(" {} | bpflab/{} |", peer.name(), peer.name()));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|---|".repeat(ran.len()));
    out.push('\n');
    let ratio = |r: &Round, i: usize| r.peers[i].map(|p| r.bpflab / p);
    for (n, round) in report.rounds.iter().enumerate() {
        out.push_str(&format!("| {} | {:.2}s |", n + 1, round.bpflab));
        for (i, _) in &ran {
            match (round.peers[*i], ratio(round, *i)) {
                (Some(p), Some(q)) => out.push_str(&format!(" {p:.2}s | {q:.2} |")),
                _ => out.push_str(" - | - |"),
            }
        }
        out.push('\n');
    }
    let fmt = |v: Option<f64>, unit: &str| {
        v.map(|v| format!("{v:.2}{unit}"))
            .unwrap_or_else(|| "-".into())
    };
    out.push_str(&format!(
        "| **median** | **{}** |",
        fmt(
            median(report.rounds.iter().map(|r| r.bpflab).collect()),
            "s"
        )
    ));
    for (i, _) in &ran {
        let times = report.rounds.iter().filter_map(|r| r.peers[*i]).collect();
        let ratios = report.rounds.iter().filter_map(|r| ratio(r, *i)).collect();
        out.push_str(&format!(
            " **{}** | **{}** |",
            fmt(median(times), "s"),
            fmt(median(ratios), "")
        ));
    }
    out.push('\n');
    for (peer, why) in &report.skipped {
        out.push_str(&format!("\n{peer} not run: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_taken_within_rounds_and_their_median_reported() {
        let report = PeerReport {
            kernel: "6.1-peers".into(),
            bpflab_boots: "6.1-peers".into(),
            accel: "TCG".into(),
            skipped: vec![("virtme-ng".into(), "vng is not installed".into())],
            rounds: vec![
                Round {
                    bpflab: 2.0,
                    peers: vec![Some(10.0), None],
                },
                Round {
                    bpflab: 3.0,
                    peers: vec![Some(10.0), None],
                },
                Round {
                    bpflab: 1.0,
                    peers: vec![Some(4.0), None],
                },
            ],
        };
        let t = table(&report);
        assert!(
            t.contains("| round | bpflab | vmtest | bpflab/vmtest |\n"),
            "{t}"
        );
        assert!(!t.contains("bpflab/virtme-ng"), "{t}");
        assert!(t.contains("| 3 | 1.00s | 4.00s | 0.25 |"), "{t}");
        // Ratios 0.2, 0.3, 0.25: the median is 0.25, not 2.0/10.0.
        assert!(
            t.contains("| **median** | **2.00s** | **10.00s** | **0.25** |"),
            "{t}"
        );
        assert!(t.contains("virtme-ng not run: vng is not installed"), "{t}");
    }

    #[test]
    fn medians_of_even_counts_average_the_middle_pair() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
