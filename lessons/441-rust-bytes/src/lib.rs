//! Exercise 44.1, solved: the Rust counter that adds up the bytes too, judged by the
//! exercise's own workload and check (lesson 4401's).

use bpflab_guest::{Lab, Outcome};
use lesson_4401_rust_bytes::{load_and_attach, workload_and_check};

/// Runs the solution inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let bpf = load_and_attach(lab, "bytes-rs.bpf.o")?;
    workload_and_check(lab, &bpf)
}
