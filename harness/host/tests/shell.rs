//! `bpflab lesson 1 --shell`, driven like a learner would: wait for the guest's shell,
//! type commands, see a "Hello World!!" for each, see the program with `bpftool prog
//! show`, `exit`, and the VM ends cleanly.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Everything the process printed so far, read on a thread so the test never blocks.
struct Screen {
    text: String,
    chunks: mpsc::Receiver<String>,
}

impl Screen {
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.text.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.text.push_str(&chunk),
                Err(_) => return false,
            }
        }
        true
    }

    fn wait_for_count(&mut self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count(needle) < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.text.push_str(&chunk),
                Err(_) => return false,
            }
        }
        true
    }

    fn count(&self, needle: &str) -> usize {
        self.text.matches(needle).count()
    }
}

#[test]
fn typing_commands_in_the_guest_shell_triggers_the_lesson() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bpflab"))
        .args(["lesson", "1", "--shell", "--timeout", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut screen = Screen {
        text: String::new(),
        chunks: rx,
    };
    let mut keyboard = child.stdin.take().unwrap();

    assert!(
        screen.wait_for("bpflab:/# ", Duration::from_secs(600)),
        "no shell prompt:\n{}",
        screen.text
    );
    let before = screen.count("Hello World!!");
    keyboard.write_all(b"ls /bpflab\n").unwrap();
    assert!(
        screen.wait_for("lessons    plan.json", Duration::from_secs(60)),
        "ls did not run:\n{}",
        screen.text
    );
    // `ls` was forked by the shell, so a greeting must follow.
    let greeted = screen.wait_for_count("Hello World!!", before + 1, Duration::from_secs(60));
    assert!(
        greeted,
        "no greeting for the typed command:\n{}",
        screen.text
    );

    // The lesson's program is still loaded, and bpftool (Debian's, for the guest's arch)
    // shows it.
    keyboard.write_all(b"bpftool prog show\n").unwrap();
    assert!(
        screen.wait_for("kprobe  name hello  tag ", Duration::from_secs(60)),
        "bpftool did not show lesson 1's program:\n{}",
        screen.text
    );

    keyboard.write_all(b"exit\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the VM did not end after `exit`");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit code {status}:\n{}", screen.text);
}
