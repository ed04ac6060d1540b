//! Exercise 41.1, user side: lesson 41's packet socket and workload with the filter in
//! `filter.bpf.c`, and the exercise's check, which compares what the socket received with
//! what the workload sent, whatever the program looks like.

use anyhow::Context as _;
use aya::programs::SocketFilter;
use bpflab_guest::packets::{PacketSocket, Received};
use bpflab_guest::{Lab, Outcome};
use lesson_41_socket_filter::{capture, Mix, PORT};

/// Runs the exercise inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    attempt(lab, "filter.bpf.o")
}

/// Loads `object`, attaches its `tcp_port` program to a packet socket on `lo`, runs
/// lesson 41's workload and checks what the socket received.
pub fn attempt(lab: &mut Lab, object: &str) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load(object)?;
    let program: &mut SocketFilter = bpf
        .program_mut("tcp_port")
        .with_context(|| format!("{object} has no function `tcp_port` (keep its name)"))?
        .try_into()?;
    program.load()?;
    let socket = PacketSocket::open()?;
    program.attach(&socket)?;
    lab.note("eBPF socket filter attached to a packet socket on lo");
    let (mix, received) = capture(lab, &socket, |mix| {
        2 * (mix.to_port.to_server + mix.to_port.to_client)
    })?;
    lab.print(format!(
        "passed: {} leaving lo, {} arriving",
        received.outgoing, received.incoming
    ));
    Ok(check(&mix, &received))
}

/// The check of exercise 41.1: the socket received every segment of the conversation on
/// TCP port 80, both ways, twice each (leaving and arriving on `lo`), and nothing else.
pub fn check(mix: &Mix, received: &Received) -> Outcome {
    let (to, from) = (mix.to_port.to_server, mix.to_port.to_client);
    let want = to + from;
    let got = (received.outgoing, received.incoming, received.dropped);
    if got == (want, want, 0) {
        Outcome::Passed(format!(
            "both sides of TCP port {PORT}: the {to} segments to it and the {from} from it, \
             each seen leaving and arriving"
        ))
    } else if got == (to, to, 0) {
        Outcome::Failed(format!(
            "not solved yet: the filter passes the {to} segments sent to port {PORT}, but not \
             the {from} the server sent from it; pass a source port of {PORT} too (EXERCISE \
             41.1 in filter.bpf.c)"
        ))
    } else {
        Outcome::Failed(format!(
            "not solved yet: the conversation on port {PORT} was {to} segments to the server \
             and {from} back, each crossing lo twice ({} copies), and nothing else may pass; \
             the socket received {} leaving and {} arriving ({} dropped)",
            2 * want,
            got.0,
            got.1,
            got.2
        ))
    }
}
