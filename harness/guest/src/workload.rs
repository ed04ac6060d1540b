//! Workloads lessons run inside the guest, so their probes have something to see.

use anyhow::Context as _;

/// Creates `n` child processes with the clone(2) system call, one after the other; each
/// exits at once and is reaped.
///
/// Called explicitly because not every way of making a process goes through clone:
/// musl's `fork()` uses the fork system call, which a kprobe on clone never sees.
pub fn clone_children(n: usize) -> anyhow::Result<()> {
    for _ in 0..n {
        // SAFETY: a raw clone with only SIGCHLD set behaves like fork(). The child calls
        // nothing but _exit, which is async-signal-safe, so the copied address space of
        // this multi-threaded process is never used in a state it cannot handle.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        match pid {
            // SAFETY: in the child, _exit ends it at once without running this process's
            // atexit handlers or touching its locks, and is async-signal-safe.
            0 => unsafe { libc::_exit(0) },
            -1 => return Err(std::io::Error::last_os_error()).context("clone(2) failed"),
            pid => {
                let mut status = 0;
                // SAFETY: waiting for the child just created.
                unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
            }
        }
    }
    Ok(())
}

/// Creates `n` child processes with clone(2), one after the other; each calls execve(2)
/// on a program that does not exist, then exits, and is reaped.
///
/// The guest has no programs to run (busybox comes only with `--shell`), and none is
/// needed: a probe on the function behind execve(2) fires when the call enters the
/// kernel, before the kernel looks for the file, and the call then fails with ENOENT.
pub fn exec_children(n: usize) -> anyhow::Result<()> {
    let path = c"/bpflab/no-such-program";
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    for _ in 0..n {
        // SAFETY: as in clone_children; the child calls only execve and _exit, both
        // async-signal-safe, with arguments built before the clone.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        match pid {
            // SAFETY: argv and envp are NULL-terminated arrays of C strings that outlive
            // the call; execve returns only on failure, and _exit then ends the child.
            0 => unsafe {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(0)
            },
            -1 => return Err(std::io::Error::last_os_error()).context("clone(2) failed"),
            pid => {
                let mut status = 0;
                // SAFETY: waiting for the child just created.
                unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
            }
        }
    }
    Ok(())
}

/// A TCP connection over loopback inside the guest: a server that reads and discards
/// everything, and a client that sends messages to it on demand.
pub struct TcpConversation {
    client: std::net::TcpStream,
    server: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
    /// The server's address (`127.0.0.1:<port>`).
    pub server_addr: std::net::SocketAddr,
    /// The client's address (`127.0.0.1:<ephemeral port>`).
    pub client_addr: std::net::SocketAddr,
}

impl TcpConversation {
    /// Starts the server on a port the kernel picks and connects the client.
    pub fn open() -> anyhow::Result<TcpConversation> {
        TcpConversation::open_on(0)
    }

    /// Starts the server on `port` of 127.0.0.1 (0: one the kernel picks) and connects
    /// the client.
    pub fn open_on(port: u16) -> anyhow::Result<TcpConversation> {
        use std::io::Read;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("binding a loopback listener on port {port}"))?;
        let server_addr = listener.local_addr()?;
        let server = std::thread::Builder::new()
            .name("tcp-server".into())
            .spawn(move || -> std::io::Result<u64> {
                let (mut conn, _) = listener.accept()?;
                let mut buf = [0u8; 4096];
                let mut total = 0;
                loop {
                    match conn.read(&mut buf)? {
                        0 => return Ok(total),
                        n => total += n as u64,
                    }
                }
            })
            .context("starting the server thread")?;
        let client =
            std::net::TcpStream::connect(server_addr).context("connecting over loopback")?;
        client.set_nodelay(true)?;
        let client_addr = client.local_addr()?;
        Ok(TcpConversation {
            client,
            server: Some(server),
            server_addr,
            client_addr,
        })
    }

    /// Sends one message of `size` bytes with a single system call (std writes to a socket
    /// with send(2), as sendto): one `tcp_sendmsg` call.
    pub fn send(&mut self, size: usize) -> anyhow::Result<()> {
        use std::io::Write;
        let message = vec![b'x'; size];
        let written = self
            .client
            .write(&message)
            .context("sending over loopback")?;
        anyhow::ensure!(written == size, "short write: {written} of {size} bytes");
        Ok(())
    }

    /// Closes the connection and returns how many bytes the server received.
    pub fn close(mut self) -> anyhow::Result<u64> {
        self.client.shutdown(std::net::Shutdown::Write)?;
        let server = self.server.take().expect("joined once");
        let received = server
            .join()
            .map_err(|_| anyhow::anyhow!("the server thread panicked"))?
            .context("the loopback server failed")?;
        Ok(received)
    }
}

/// The calling thread's id: what `bpf_get_current_pid_tgid()` holds in its lower half,
/// as the process id (`std::process::id()`) is its upper half.
pub fn current_tid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}
