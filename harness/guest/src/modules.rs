//! Kernel modules a lesson asks for (`kernel_modules` in its `lesson.toml`): the host
//! takes them from the booted kernel's own package (the same verified file the kernel
//! came from) and puts them in the initramfs; the agent loads them before the lesson.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bpflab_protocol::MODULES_DIR;

/// What loading a module came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The kernel has it already: built in, or loaded earlier in this boot.
    AlreadyThere,
    /// Loaded now (`finit_module`), in this long.
    Now(Duration),
    /// Neither in the kernel nor in the initramfs: the host found none for this kernel.
    Absent,
}

/// Makes sure module `name` (e.g. `"veth"`) is in the kernel: loads
/// `<MODULES_DIR>/<name>.ko` unless the kernel has it already.
pub fn load(name: &str) -> anyhow::Result<Loaded> {
    if Path::new("/sys/module").join(name).exists() {
        return Ok(Loaded::AlreadyThere);
    }
    let path = Path::new(MODULES_DIR).join(format!("{name}.ko"));
    if !path.exists() {
        return Ok(Loaded::Absent);
    }
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let started = Instant::now();
    // SAFETY: finit_module(2) reads the module from an open descriptor that outlives the
    // call; the parameter string is an empty NUL-terminated one.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            c"".as_ptr(),
            0 as libc::c_int,
        )
    };
    let took = started.elapsed();
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EEXIST) {
            return Ok(Loaded::AlreadyThere);
        }
        return Err(error).with_context(|| format!("loading {} (finit_module)", path.display()));
    }
    Ok(Loaded::Now(took))
}
