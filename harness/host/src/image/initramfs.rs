//! The guest's root file system: a `newc` cpio archive the kernel unpacks into a tmpfs.
//!
//! It holds the agent as `/init`, the plan, and the lessons' compiled objects; busybox
//! and bpftool (with the libraries it loads) only when asked for. Uncompressed: under emulation, decompressing costs more than copying.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bpflab_protocol::{Plan, BUILT_BTF_PATH, LESSONS_DIR, MODULES_DIR, PLAN_PATH};

/// A `newc` cpio archive being written.
#[derive(Debug, Default)]
pub struct Cpio {
    buf: Vec<u8>,
    next_inode: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    /// An empty archive.
    pub fn new() -> Cpio {
        Cpio::default()
    }

    /// Adds a directory (parents must be added first).
    pub fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[]);
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data);
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Closes the archive with its trailer and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.buf
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let name = path.trim_start_matches('/');
        self.next_inode += 1;
        let fields = [
            self.next_inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the same inputs give the same archive
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.buf.extend_from_slice(b"070701");
        for field in fields {
            self.buf
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

/// One lesson's objects to put in the image: guest directory name and (name, host path).
pub type LessonObjects<'a> = (&'a str, Vec<(&'a str, &'a Path)>);

/// A file of the host to put in the guest, with the directories above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFile {
    /// Where it goes in the guest, relative to `/` (`usr/sbin/bpftool`).
    pub guest: String,
    /// The file on the host.
    pub host: PathBuf,
    /// Its permissions in the guest.
    pub mode: u32,
}

/// What a boot may add to the agent, the plan and the objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// Becomes `/bin/busybox` (for `--shell`).
    pub busybox: Option<&'a Path>,
    /// BTF for a kernel without its own, at [`BUILT_BTF_PATH`].
    pub kernel_btf: Option<&'a Path>,
    /// Programs for the guest and what they load (bpftool and its libraries).
    pub files: &'a [GuestFile],
    /// Kernel modules, as (name, file in the cache; `.ko` or `.ko.xz`), each becoming
    /// `<MODULES_DIR>/<name>.ko`, decompressed.
    pub modules: &'a [(String, std::path::PathBuf)],
}

/// Builds the initramfs for one boot.
pub fn build(
    agent: &Path,
    plan: &Plan,
    lessons: &[LessonObjects<'_>],
    extras: Extras<'_>,
) -> anyhow::Result<Vec<u8>> {
    let mut cpio = Cpio::new();
    let base = ["dev", "proc", "sys", "tmp", "bin", "bpflab", LESSONS_DIR];
    for dir in base {
        cpio.dir(dir, 0o755);
    }
    // The kernel opens /dev/console for init's stdin/out/err before init runs, so it must
    // exist in the archive itself (devtmpfs is mounted later, by the agent).
    cpio.char_device("dev/console", 0o600, 5, 1);
    let agent_bytes = std::fs::read(agent)
        .with_context(|| format!("reading the guest agent {}", agent.display()))?;
    cpio.file("init", 0o755, &agent_bytes);
    cpio.file(PLAN_PATH, 0o644, &serde_json::to_vec_pretty(plan)?);
    if let Some(busybox) = extras.busybox {
        let bytes =
            std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
        cpio.file("bin/busybox", 0o755, &bytes);
    }
    if let Some(btf) = extras.kernel_btf {
        let bytes = std::fs::read(btf).with_context(|| format!("reading {}", btf.display()))?;
        cpio.file(BUILT_BTF_PATH, 0o644, &bytes);
    }
    let mut dirs: BTreeSet<String> = base.iter().map(|d| d.to_string()).collect();
    for file in extras.files {
        anyhow::ensure!(
            Path::new(&file.guest)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "a guest file's path leaves the guest's root: {}",
            file.guest
        );
        // Each directory above it, outermost first, once.
        let mut parents: Vec<&Path> = Path::new(&file.guest).ancestors().skip(1).collect();
        parents.retain(|p| !p.as_os_str().is_empty());
        for parent in parents.into_iter().rev() {
            let parent = parent.to_string_lossy().into_owned();
            if dirs.insert(parent.clone()) {
                cpio.dir(&parent, 0o755);
            }
        }
        let bytes = std::fs::read(&file.host)
            .with_context(|| format!("reading {}", file.host.display()))?;
        cpio.file(&file.guest, file.mode, &bytes);
    }
    if !extras.modules.is_empty() {
        cpio.dir(MODULES_DIR, 0o755);
    }
    for (name, file) in extras.modules {
        let bytes = crate::kernel::modules::module_bytes(file)?;
        cpio.file(&format!("{MODULES_DIR}/{name}.ko"), 0o644, &bytes);
    }
    for (dir, objects) in lessons {
        let dir = format!("{LESSONS_DIR}/{dir}");
        cpio.dir(&dir, 0o755);
        for (name, path) in objects {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            cpio.file(&format!("{dir}/{name}"), 0o644, &bytes);
        }
    }
    Ok(cpio.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a newc archive back: (name, mode, rdev major, data) per entry.
    fn parse(mut bytes: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let field = |h: &[u8], i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&h[6 + i * 8..6 + i * 8 + 8]).unwrap(),
                16,
            )
            .unwrap()
        };
        let align = |n: usize| (n + 3) & !3;
        loop {
            assert_eq!(&bytes[..6], b"070701");
            let (mode, size, major, namesize) = (
                field(bytes, 1),
                field(bytes, 6) as usize,
                field(bytes, 9),
                field(bytes, 11) as usize,
            );
            let name = String::from_utf8(bytes[110..110 + namesize - 1].to_vec()).unwrap();
            let data_start = align(110 + namesize);
            let data = bytes[data_start..data_start + size].to_vec();
            bytes = &bytes[align(data_start + size)..];
            if name == "TRAILER!!!" {
                assert!(bytes.is_empty());
                return out;
            }
            out.push((name, mode, major, data));
        }
    }

    #[test]
    fn writes_aligned_newc_entries_that_read_back() {
        let mut cpio = Cpio::new();
        cpio.dir("/dev", 0o755);
        cpio.char_device("dev/console", 0o600, 5, 1);
        cpio.file("init", 0o755, b"12345");
        let bytes = cpio.finish();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0, "dev");
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!((entries[1].1, entries[1].2), (S_IFCHR | 0o600, 5));
        assert_eq!(entries[2].3, b"12345");
    }

    #[test]
    fn the_same_inputs_give_the_same_archive() {
        let build = || {
            let mut c = Cpio::new();
            c.file("a", 0o644, b"x");
            c.finish()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn the_image_holds_init_plan_and_objects() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent");
        let obj = dir.path().join("hello.bpf.o");
        std::fs::write(&agent, b"\x7fELF").unwrap();
        std::fs::write(&obj, b"BPF").unwrap();
        let plan = Plan {
            lessons: vec![],
            channel: "/dev/ttyS1".into(),
            shell: false,
            fault: None,
            probe_features: false,
        };
        let bytes = build(
            &agent,
            &plan,
            &[("01-hello", vec![("hello.bpf.o", obj.as_path())])],
            Extras {
                busybox: Some(&agent),
                kernel_btf: Some(&obj),
                files: &[GuestFile {
                    guest: "usr/lib/x86_64-linux-gnu/libz.so.1".into(),
                    host: obj.clone(),
                    mode: 0o644,
                }],
                modules: &[("veth".to_string(), obj.clone())],
            },
        )
        .unwrap();
        let names: Vec<String> = parse(&bytes).into_iter().map(|e| e.0).collect();
        for expected in [
            "init",
            "dev/console",
            "bpflab/plan.json",
            "bpflab/lessons/01-hello/hello.bpf.o",
            "bpflab/modules/veth.ko",
            "bin/busybox",
            "bpflab/vmlinux.btf",
            "usr",
            "usr/lib",
            "usr/lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu/libz.so.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
    }
}
