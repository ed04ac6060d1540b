//! `bpflab new`: scaffolds a lesson ([`crate::scaffold`]) and says what to do next.

use std::process::ExitCode;

use crate::{config, scaffold};

/// Makes lesson `number`, called `name`, in the source tree.
pub fn run(number: u32, name: &str) -> anyhow::Result<ExitCode> {
    let root = config::source_root();
    let dir = scaffold::new_lesson(&root, number, name)?;
    let shown = dir.strip_prefix(&root).unwrap_or(&dir).display();
    println!("made {shown}: lesson {number}, a kprobe on clone(2) that says hello");
    println!("  run it:      cargo run -- lesson {number}");
    println!("  change it:   {shown}/hello.bpf.c (kernel side), src/lib.rs (user side),");
    println!("               lesson.toml (title, kind, programs), README.md");
    println!("  test it:     cargo test runs it; record its snapshot with `cargo insta review`");
    Ok(ExitCode::SUCCESS)
}
