//! The floor under every run: the same kernel image, booted by the same QEMU with the same
//! flags and command line, into a first process that powers the guest off at once
//! (busybox as `/bin/poweroff -f`). No run of bpflab on that kernel can be faster, so
//! `bpflab / floor` says how much of a run is bpflab's own (agent, lesson, shutdown,
//! the host's stages) rather than the kernel's boot.

use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::image::{guest_tools, initramfs::Cpio};
use crate::kernel::catalog::Catalog;
use crate::run::{self, RunRequest, RunResult};
use crate::vm::qemu::Init;
use crate::vm::{self, VmEnd};

/// QEMU start → QEMU gone, in seconds, for the bare boot of the kernel `result` booted,
/// with `request`'s machine and flags.
pub fn time(request: &RunRequest, result: &RunResult) -> anyhow::Result<f64> {
    let config = Config::load()?;
    let catalog = Catalog::load_shipped()?;
    let qemu = crate::provision::qemu(&config, request.arch)?;
    let busybox = guest_tools::busybox(&config, &catalog, request.arch)?;
    let scratch = tempfile::Builder::new()
        .prefix("bpflab-floor-")
        .tempdir()
        .context("creating a temporary directory for the floor's VM")?;
    let mut qemu_config = run::qemu_config(request, &result.accel, &result.kernel, scratch.path());
    qemu_config.init = Init::PowerOff;
    std::fs::write(&qemu_config.initrd, image(&busybox)?)
        .with_context(|| format!("writing {}", qemu_config.initrd.display()))?;
    let options = vm::VmOptions {
        timeout: Some(Duration::from_secs(120)),
        interactive: false,
    };
    let report = vm::run(&qemu, &qemu_config, options, |_| {})?;
    // Powered off, the guest never says it is done: an early exit is the floor's end.
    anyhow::ensure!(
        matches!(report.end, VmEnd::ExitedEarly(_)),
        "the bare boot did not power off: {:?}; its console ended with:\n{}",
        report.end,
        report.console_tail.join("\n")
    );
    Ok(report.wall.as_secs_f64())
}

/// An initramfs of busybox alone (and the console device the kernel opens for it).
fn image(busybox: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let mut cpio = Cpio::new();
    cpio.dir("bin", 0o755);
    cpio.dir("dev", 0o755);
    cpio.char_device("dev/console", 0o600, 5, 1);
    cpio.file("bin/poweroff", 0o755, &bytes);
    Ok(cpio.finish())
}
