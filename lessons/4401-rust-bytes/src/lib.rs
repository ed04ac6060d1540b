//! Exercise 44.1, user side: load `bytes-rs.bpf.o`, attach it to tcp_sendmsg, send
//! messages of known sizes and check both entries of its `stats` map: 0, the calls; 1,
//! the bytes. The kernel side is the one to change (`bytes-rs/src/main.rs`).

use anyhow::Context as _;
use aya::maps::HashMap;
use aya::programs::KProbe;
use aya::Ebpf;
use bpflab_guest::workload::TcpConversation;
use bpflab_guest::{Lab, Outcome};

/// The sizes of the messages the workload sends, one write(2) each: all different, so a
/// program that adds anything but the size (a constant, another argument) is caught.
pub const SIZES: [usize; 6] = [1, 10, 100, 1000, 1500, 4000];

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let bpf = load_and_attach(lab, "bytes-rs.bpf.o")?;
    workload_and_check(lab, &bpf)
}

/// Loads `object`, attaches its `count_sendmsg` to tcp_sendmsg and returns it.
pub fn load_and_attach(lab: &mut Lab, object: &str) -> anyhow::Result<Ebpf> {
    let mut bpf = lab.load(object)?;
    let program: &mut KProbe = bpf
        .program_mut("count_sendmsg")
        .with_context(|| format!("{object} has no function `count_sendmsg`"))?
        .try_into()?;
    program.load()?;
    program.attach("tcp_sendmsg", 0)?;
    lab.note("kprobe attached to tcp_sendmsg");
    Ok(bpf)
}

/// The workload and the check of exercise 44.1: one message of each of [`SIZES`], then
/// entry 0 must hold how many were sent and entry 1 their bytes.
pub fn workload_and_check(lab: &Lab, bpf: &Ebpf) -> anyhow::Result<Outcome> {
    let stats: HashMap<_, u32, u64> =
        HashMap::try_from(bpf.map("stats").context("the object has no map `stats`")?)?;
    let mut conversation = TcpConversation::open()?;
    for size in SIZES {
        conversation.send(size)?;
    }
    let received = conversation.close()?;
    let (calls, bytes) = (stats.get(&0, 0).ok(), stats.get(&1, 0).ok());
    let show = |v: Option<u64>| v.map_or("no entry".to_string(), |v| v.to_string());
    lab.print(format!(
        "stats[0], calls: {}; stats[1], bytes: {}",
        show(calls),
        show(bytes)
    ));
    let (sent, total) = (SIZES.len() as u64, SIZES.iter().sum::<usize>() as u64);
    Ok(match (calls, bytes) {
        (Some(c), Some(b)) if c == sent && b == total && received == total => Outcome::Passed(
            format!("{sent} messages sent, {total} bytes: {c} calls and {b} bytes counted"),
        ),
        (_, None) => Outcome::Failed(format!(
            "not solved yet: the map has no entry 1 (the bytes); {sent} messages of \
             {total} bytes were sent. See EXERCISE 44.1 in bytes-rs/src/main.rs"
        )),
        (c, Some(b)) => Outcome::Failed(format!(
            "not solved yet: {sent} messages of {total} bytes were sent, but the map counted \
             {} calls and {b} bytes",
            show(c)
        )),
    })
}
