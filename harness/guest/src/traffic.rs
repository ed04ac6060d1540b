//! Loopback traffic whose every packet is known, for lessons that filter packets to check
//! against: TCP conversations that report how many segments went each way, in the
//! kernel's own count (`TCP_INFO`'s `tcpi_segs_out` and `tcpi_segs_in`, Linux 4.2), and
//! UDP datagrams.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::Context as _;

/// One TCP conversation over loopback, from connect to both ends closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpExchange {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// The client's (ephemeral) port.
    pub client_port: u16,
    /// Segments the client sent (to `port`): SYN, ACK, one per message, FIN, the last ACK
    /// (the client socket's `tcpi_segs_out`).
    pub to_server: u64,
    /// Segments the server sent (from `port`): SYN-ACK, ACKs, FIN (the client socket's
    /// `tcpi_segs_in`: the server's own `tcpi_segs_out` misses the SYN-ACK, which the
    /// listener sends before the connection's socket exists).
    pub to_client: u64,
}

/// Connects to a server on 127.0.0.1:`port`, sends `messages` messages of `size` bytes
/// (one write each, Nagle off), then closes both ends in turn and waits for the last
/// segment: when this returns, every segment of the conversation has been sent, and the
/// counts say how many.
pub fn tcp_exchange(port: u16, messages: usize, size: usize) -> anyhow::Result<TcpExchange> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("binding a TCP listener on 127.0.0.1:{port}"))?;
    let server = std::thread::Builder::new()
        .name("tcp-server".into())
        .spawn(move || -> std::io::Result<()> {
            let (mut conn, _) = listener.accept()?;
            let mut buf = [0u8; 4096];
            while conn.read(&mut buf)? > 0 {}
            // The client's FIN arrived: send ours, which the client acknowledges.
            conn.shutdown(Shutdown::Write)
        })
        .context("starting the server thread")?;
    let mut client = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    client.set_nodelay(true)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let client_port = client.local_addr()?.port();
    let message = vec![b'x'; size];
    for _ in 0..messages {
        client
            .write_all(&message)
            .context("sending over loopback")?;
    }
    client.shutdown(Shutdown::Write)?;
    // read() returns 0 once the server's FIN is in, which the kernel acknowledged as it
    // took it in: the client has sent its last segment.
    let mut buf = [0u8; 64];
    while client
        .read(&mut buf)
        .context("waiting for the server to close")?
        > 0
    {}
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))?
        .context("the loopback server failed")?;
    let (to_server, to_client) = segments(&client)?;
    Ok(TcpExchange {
        port,
        client_port,
        to_server,
        to_client,
    })
}

/// How many segments `stream`'s connection sent and received, in the kernel's count
/// (`tcpi_segs_out`, `tcpi_segs_in`).
pub fn segments(stream: &TcpStream) -> anyhow::Result<(u64, u64)> {
    // SAFETY: tcp_info is plain integers, valid all zero.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` has room for the length given; the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getsockopt(TCP_INFO)");
    }
    let end = std::mem::offset_of!(libc::tcp_info, tcpi_segs_in) + 4;
    anyhow::ensure!(
        len as usize >= end,
        "this kernel's TCP_INFO has no tcpi_segs_out and tcpi_segs_in (Linux 4.2)"
    );
    Ok((u64::from(info.tcpi_segs_out), u64::from(info.tcpi_segs_in)))
}

/// Sends `count` UDP datagrams of `size` bytes to a receiver on 127.0.0.1:`port`, and
/// returns how many it received (all of them, or an error).
pub fn udp_datagrams(port: u16, count: usize, size: usize) -> anyhow::Result<u64> {
    let receiver = UdpSocket::bind(("127.0.0.1", port))
        .with_context(|| format!("binding a UDP socket on 127.0.0.1:{port}"))?;
    receiver.set_read_timeout(Some(Duration::from_secs(5)))?;
    let sender = UdpSocket::bind("127.0.0.1:0").context("binding a UDP sender")?;
    let datagram = vec![b'u'; size];
    let mut buf = vec![0u8; size + 1];
    for _ in 0..count {
        sender.send_to(&datagram, ("127.0.0.1", port))?;
        let n = receiver
            .recv(&mut buf)
            .context("receiving a UDP datagram")?;
        anyhow::ensure!(n == size, "a {size}-byte datagram arrived as {n} bytes");
    }
    Ok(count as u64)
}

/// Sends `count` UDP datagrams of `size` bytes from `sender` to `receiver`'s address
/// (anywhere: across a veth pair, say), and returns how many `receiver` got: all of them
/// within `patience` each, or those that came before a wait for the next ran out.
pub fn udp_across(
    sender: &UdpSocket,
    receiver: &UdpSocket,
    count: usize,
    size: usize,
    patience: Duration,
) -> anyhow::Result<u64> {
    let to = receiver.local_addr()?;
    let datagram = vec![b'u'; size];
    for _ in 0..count {
        sender
            .send_to(&datagram, to)
            .with_context(|| format!("sending a UDP datagram to {to}"))?;
    }
    receiver.set_read_timeout(Some(patience))?;
    let mut buf = vec![0u8; size + 1];
    let mut received = 0;
    while received < count as u64 {
        match receiver.recv(&mut buf) {
            Ok(_) => received += 1,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e).context("receiving a UDP datagram"),
        }
    }
    Ok(received)
}
