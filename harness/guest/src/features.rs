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
        // The program type is 4.1's; the question is where it can be attached.
        Feature::Tc => Ok(program(ProgramType::SchedClassifier)? && (tcx()? || clsact()?)),
    }
}

/// Whether the kernel has TCX (6.6): asked which programs run on lo's TCX ingress
/// (`BPF_PROG_QUERY`, `BPF_TCX_INGRESS`), it answers (none, say); a kernel without TCX
/// does not know the attach type (or, before 4.15, the command) and calls it invalid.
fn tcx() -> anyhow::Result<bool> {
    const BPF_PROG_QUERY: libc::c_long = 16;
    const BPF_TCX_INGRESS: u32 = 46;
    // target_ifindex (lo is 1 in every namespace), attach_type, then flags, the id
    // buffer (none) and the counts, all zero.
    let mut attr = [0u32; 16];
    attr[0] = 1;
    attr[1] = BPF_TCX_INGRESS;
    // SAFETY: bpf(2) reads and writes only the 64 bytes of `attr`, whose size it is given;
    // with no id buffer it writes only the counts.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if ret >= 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EINVAL) => Ok(false),
        _ => Err(anyhow::Error::new(error).context("probing for TCX (BPF_PROG_QUERY)")),
    }
}

/// Whether the kernel makes a `clsact` qdisc (4.5), tried on the `lo` of a network
/// namespace made for the purpose and gone after (or, on a kernel without network
/// namespaces, on the agent's own `lo`, where a lesson would add it anyway). Debian builds
/// it as a module, sch_ingress (and the bpf filter as cls_bpf): those a lesson brought
/// are loaded first, so that the answer is the same before that lesson runs as during.
fn clsact() -> anyhow::Result<bool> {
    for module in ["sch_ingress", "cls_bpf"] {
        // One that cannot be loaded leaves the kernel without it, which the probe finds.
        crate::modules::load(module).ok();
    }
    let add = || match aya::programs::tc::qdisc_add_clsact("lo") {
        Ok(()) => Ok(true),
        Err(aya::programs::tc::TcError::NetlinkError(e)) => match e.raw_os_error() {
            Some(libc::EEXIST) => Ok(true),
            // An unknown qdisc kind, or one without the clsact of 4.5; or a kernel before
            // 4.12, whose netlink sockets refuse NETLINK_EXT_ACK, without which aya 0.14
            // opens none.
            Some(libc::ENOENT | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOPROTOOPT) => Ok(false),
            _ => Err(anyhow::Error::new(e).context("probing for the clsact qdisc")),
        },
        Err(e) => Err(anyhow::Error::new(e).context("probing for the clsact qdisc")),
    };
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return add();
    }
    crate::netns::Netns::new()?.run(add)
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
