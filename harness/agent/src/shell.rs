//! `--shell`: a busybox shell on the guest's console, while the lessons' programs stay
//! attached and their trace output keeps streaming to the learner's terminal, and bpftool
//! can show them as the kernel holds them.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::Context as _;

/// Where the initramfs puts busybox.
const BUSYBOX: &str = "/bin/busybox";
/// Where the initramfs puts bpftool, with `--shell`.
const BPFTOOL: &str = "/usr/sbin/bpftool";

/// Runs an interactive shell on the console until the learner types `exit`.
pub fn run() -> anyhow::Result<()> {
    let status = Command::new(BUSYBOX)
        .args(["--install", "-s", "/bin"])
        .status()
        .with_context(|| format!("running {BUSYBOX} --install"))?;
    anyhow::ensure!(status.success(), "busybox --install failed");

    let tty = console_device()?;
    let mut terminal = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tty)
        .with_context(|| format!("opening {tty}"))?;
    // bpftool is there unless the host could not provide it (it said why).
    let inspect = if std::path::Path::new(BPFTOOL).is_file() {
        ", or inspect them: `bpftool prog show`, `bpftool map dump id N`"
    } else {
        ""
    };
    writeln!(
        terminal,
        "\r\nbpflab: the lesson's programs stay attached; try `ls`, `date`, `pwd`{inspect}. `exit` ends the VM.\r"
    )?;

    let mut shell = Command::new("/bin/sh");
    shell
        .stdin(terminal.try_clone()?)
        .stdout(terminal.try_clone()?)
        .stderr(terminal)
        .env_clear()
        .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
        .env("HOME", "/")
        .env("TERM", "vt100")
        .env("PS1", "bpflab:\\w# ")
        .current_dir("/");
    // The shell gets a session of its own with the console as its controlling terminal,
    // so Ctrl-C and job control work; failing that, it still runs, without them.
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe work is sound. It makes two system calls, which rustix issues
    // directly: no allocation, no lock, nothing the other threads of the parent could hold.
    unsafe {
        shell.pre_exec(|| {
            let _ = rustix::process::setsid();
            let _ = rustix::process::ioctl_tiocsctty(rustix::stdio::stdin());
            Ok(())
        });
    }
    shell.status().context("starting /bin/sh")?;
    Ok(())
}

/// The console's real device (`/dev/ttyS0`, `/dev/ttyAMA0`): `/dev/console` itself
/// cannot be a controlling terminal.
fn console_device() -> anyhow::Result<String> {
    let active = std::fs::read_to_string("/sys/class/tty/console/active")
        .context("reading /sys/class/tty/console/active")?;
    let name = active
        .split_whitespace()
        .last()
        .context("the kernel reports no active console")?;
    Ok(format!("/dev/{name}"))
}
