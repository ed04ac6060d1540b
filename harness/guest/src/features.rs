//! Probing the running kernel for the features lessons declare (`needs` in `lesson.toml`):
//! each is asked of the kernel itself, as libbpf's and aya's probes do (load a trivial
//! program of the type, create a map of the type, look for the BTF file), never read from
//! the version string, which distributions' backports make lie.

use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::sys::{is_map_supported, is_program_supported};
use bpflab_protocol::Feature;

use crate::btf::{core_btf, kernel_btf};

/// Whether the running kernel has `feature`.
pub fn has(feature: Feature) -> anyhow::Result<bool> {
    let program = |t| is_program_supported(t).map_err(anyhow::Error::from);
    let map = |t| is_map_supported(t).map_err(anyhow::Error::from);
    match feature {
        Feature::Kprobes => program(ProgramType::KProbe),
        Feature::Tracepoints => program(ProgramType::TracePoint),
        Feature::RawTracepoints => program(ProgramType::RawTracePoint),
        Feature::KernelBtf => Ok(kernel_btf().is_some()),
        Feature::CoreBtf => Ok(core_btf().is_some()),
        Feature::PerfEventArray => map(MapType::PerfEventArray),
        Feature::PercpuMaps => Ok(map(MapType::PerCpuArray)? && map(MapType::PerCpuHash)?),
        Feature::StackTraceMap => map(MapType::StackTrace),
        Feature::LruHash => map(MapType::LruHash),
        Feature::RingBuffer => map(MapType::RingBuf),
        Feature::SocketFilter => program(ProgramType::SocketFilter),
        Feature::PacketSockets => packet_sockets(),
        Feature::ObjectIds => object_ids(),
        Feature::NetNamespaces => Ok(std::path::Path::new("/proc/self/ns/net").exists()),
        // Program type 6 is as old as native XDP (4.8), and generic XDP (4.12) has no
        // probe of its own: a kernel between the two refuses a veth's attachment, which
        // the lesson reports.
        Feature::Xdp => program(ProgramType::Xdp),
    }
}

/// Whether the kernel knows `BPF_PROG_GET_NEXT_ID` (4.13, with `BPF_OBJ_GET_INFO_BY_FD`):
/// asked for the first program id, it answers one or "none" (ENOENT); a kernel without
/// the command calls it invalid.
fn object_ids() -> anyhow::Result<bool> {
    const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
    // start_id, next_id, open_flags: all zero, as the command wants.
    let mut attr = [0u32; 4];
    // SAFETY: bpf(2) reads and writes only the 16 bytes of `attr`, whose size it is given.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_NEXT_ID,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if ret >= 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOENT) => Ok(true),
        Some(libc::EINVAL) => Ok(false),
        _ => Err(anyhow::Error::new(error).context("probing for BPF_PROG_GET_NEXT_ID")),
    }
}

/// Whether the kernel makes `AF_PACKET` sockets (a kernel built without `CONFIG_PACKET`
/// refuses the family).
fn packet_sockets() -> anyhow::Result<bool> {
    // SAFETY: socket(2) with constant arguments; a descriptor it returns is closed at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd >= 0 {
        // SAFETY: `fd` was just opened here and is used by nothing else.
        unsafe { libc::close(fd) };
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EAFNOSUPPORT) => Ok(false),
        _ => Err(anyhow::Error::new(error).context("probing for packet sockets")),
    }
}

/// The first of `needs` the running kernel lacks, if any.
pub fn first_missing(needs: &[Feature]) -> anyhow::Result<Option<Feature>> {
    for &feature in needs {
        if !has(feature)? {
            return Ok(Some(feature));
        }
    }
    Ok(None)
}
