//! Part pinning: a map outlives the program and the descriptors that made it when it is
//! pinned, as a file, in the BPF file system. Any process may then open it by that path.
//!
//! The pin is opened again here with the bpf(2) system call itself (`BPF_OBJ_GET`, then
//! `BPF_MAP_LOOKUP_ELEM`): what any other program would do, and what works from 4.4 on.
//! aya's own `MapData::from_pin` first asks the kernel to describe the map
//! (`BPF_OBJ_GET_INFO_BY_FD`), which kernels before 4.13 cannot.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use anyhow::Context as _;
use bpflab_guest::{Lab, Outcome, Unsupported};

use super::arrays::{array_sizes, expected_slots, SLOTS};
use super::common::{attach_to_sendmsg, send_sizes};

/// Where the BPF file system is mounted (the guest's agent mounts it there).
const BPFFS: &str = "/sys/fs/bpf";
/// The BPF file system's magic number (`BPF_FS_MAGIC`), as statfs(2) reports it.
const BPF_FS_MAGIC: i64 = 0xcafe4a11;
/// The pin's name.
const PIN: &str = "/sys/fs/bpf/bpflab-lesson6-by_size";
/// The size of the message sent once the program is gone.
const LATE: u64 = 2;

/// bpf(2) commands (`enum bpf_cmd`).
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_OBJ_GET: libc::c_long = 7;

/// `union bpf_attr` for BPF_OBJ_GET (4.4's layout; `file_flags` came in 4.15, 0 is
/// what older kernels expect there).
#[repr(C)]
struct ObjGet {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `union bpf_attr` for BPF_MAP_LOOKUP_ELEM.
#[repr(C)]
struct MapElem {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// A map opened by the path it is pinned at: a descriptor of its own.
struct PinnedMap(OwnedFd);

impl PinnedMap {
    fn open(path: &Path) -> anyhow::Result<PinnedMap> {
        let name = CString::new(path.as_os_str().as_bytes())?;
        let attr = ObjGet {
            pathname: name.as_ptr() as u64,
            bpf_fd: 0,
            file_flags: 0,
        };
        // SAFETY: `attr` and the path it points to outlive the call; the kernel reads
        // `size_of` bytes of it and writes nothing.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_OBJ_GET,
                &attr as *const ObjGet,
                std::mem::size_of::<ObjGet>(),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("BPF_OBJ_GET {}", path.display()));
        }
        // SAFETY: a descriptor the kernel just returned, owned by nobody else.
        Ok(PinnedMap(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// The u64 at index `key` of an array of u64.
    fn get(&self, key: u32) -> anyhow::Result<u64> {
        let mut value = 0u64;
        let attr = MapElem {
            map_fd: self.0.as_raw_fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: &mut value as *mut u64 as u64,
            flags: 0,
        };
        // SAFETY: the key and value outlive the call and have the map's sizes (4 and 8
        // bytes); the kernel writes only the value.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_ELEM,
                &attr as *const MapElem,
                std::mem::size_of::<MapElem>(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("BPF_MAP_LOOKUP_ELEM of slot {key} through the pin"));
        }
        Ok(value)
    }
}

/// Unsupported unless the BPF file system is mounted where pins go.
fn require_bpffs() -> anyhow::Result<()> {
    let path = CString::new(BPFFS)?;
    // SAFETY: an all-zero statfs is valid, and is only written by the call.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs to fill, both alive for the call.
    let rc = unsafe { libc::statfs(path.as_ptr(), &mut fs) };
    if rc != 0 || fs.f_type as i64 != BPF_FS_MAGIC {
        return Err(Unsupported(format!(
            "needs the BPF file system (bpffs, 4.4+) mounted at {BPFFS}, where it is not"
        ))
        .into());
    }
    Ok(())
}

// ANCHOR: pinning (shown in the book)
pub fn pinning(lab: &mut Lab) -> anyhow::Result<Outcome> {
    lab.note(format!(
        "part pinning: the array part's map, pinned in {BPFFS}, outlives its program"
    ));
    require_bpffs()?;
    // A pin left by an interrupted run would make pinning fail with EEXIST.
    let _ = std::fs::remove_file(PIN);
    let bpf = attach_to_sendmsg(lab, "array.bpf.o", "count_in_array")?;
    let sizes = array_sizes();
    send_sizes(&sizes)?;
    bpf.map("by_size")
        .context("no map `by_size`")?
        .pin(PIN)
        .with_context(|| format!("pinning `by_size` at {PIN}"))?;
    lab.print(format!(
        "sent {} messages; pinned `by_size` at {PIN}",
        sizes.len()
    ));
    // Detaches the program and closes every descriptor of the object: only the pin keeps
    // the map alive now.
    drop(bpf);
    send_sizes(&[LATE])?;
    lab.print(format!(
        "the program and its object are closed; one more message, of {LATE} bytes, sent now"
    ));
    let read = read_pin();
    // The pin's file is the map's last reference: removing it frees the map.
    let removed = std::fs::remove_file(PIN);
    let seen = read?;
    removed.with_context(|| format!("removing {PIN}"))?;
    lab.print(format!(
        "opened again from {PIN} (BPF_OBJ_GET): slots {seen:?}; pin removed"
    ));
    let expected = expected_slots(&sizes);
    Ok(match seen == expected {
        true => Outcome::Passed(format!(
            "pinning: the pin reads what the program counted ({} messages), and nothing after \
             it was gone",
            sizes.len()
        )),
        false => Outcome::Failed(format!(
            "pinning: the pin reads {seen:?}, but the program counted {expected:?} before it \
             was closed (and nothing after)"
        )),
    })
}

// ANCHOR_END: pinning

fn read_pin() -> anyhow::Result<Vec<u64>> {
    let pinned = PinnedMap::open(Path::new(PIN))?;
    (0..SLOTS as u32).map(|slot| pinned.get(slot)).collect()
}
