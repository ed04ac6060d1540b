//! Crafted tarballs against the unpacker.

use super::*;

/// One entry of a crafted source tarball.
enum Crafted<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Script(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    Fifo(&'a str),
    /// What git archive puts first: the commit id.
    GlobalHeader,
}

/// Writes a `.tar.xz` of `entries` to `path`. Names and link targets go into the
/// headers as raw bytes: tar's own setters refuse `..` and absolute paths, which is
/// what these tarballs are made of.
fn crafted_tarball(path: &Path, entries: &[Crafted<'_>]) {
    use tar::EntryType as T;
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let (name, kind, link, body, mode): (&str, T, &str, &[u8], u32) = match *entry {
            Crafted::Dir(n) => (n, T::Directory, "", b"", 0o755),
            Crafted::File(n, body) => (n, T::Regular, "", body, 0o644),
            Crafted::Script(n, body) => (n, T::Regular, "", body, 0o755),
            Crafted::Symlink(n, to) => (n, T::Symlink, to, b"", 0o777),
            Crafted::HardLink(n, to) => (n, T::Link, to, b"", 0o644),
            Crafted::Fifo(n) => (n, T::Fifo, "", b"", 0o644),
            Crafted::GlobalHeader => (
                "pax_global_header",
                T::XGlobalHeader,
                "",
                b"52 comment=0123456789abcdef0123456789abcdef01234567\n",
                0o644,
            ),
        };
        let mut header = tar::Header::new_gnu();
        let raw = header.as_old_mut();
        raw.name[..name.len()].copy_from_slice(name.as_bytes());
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(body.len() as u64);
        header.set_mode(mode);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        tar.append(&header, body).unwrap();
    }
    let mut xz = xz2::write::XzEncoder::new(std::fs::File::create(path).unwrap(), 1);
    std::io::Write::write_all(&mut xz, &tar.into_inner().unwrap()).unwrap();
    xz.finish().unwrap();
}

/// Unpacks `entries` into `<tmp>/a/b/src` (deep enough that an escape lands inside
/// `<tmp>`, where the test looks for it); returns the temp dir and the result.
fn unpack_crafted(entries: &[Crafted<'_>]) -> (tempfile::TempDir, anyhow::Result<()>) {
    unpack_crafted_within(entries, SOURCE_TREE)
}

fn unpack_crafted_within(
    entries: &[Crafted<'_>],
    caps: TreeLimits,
) -> (tempfile::TempDir, anyhow::Result<()>) {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = tmp.path().join("linux.tar.xz");
    crafted_tarball(&tarball, entries);
    std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
    let result = unpack_source_within(&tarball, &tmp.path().join("a/b/src"), caps);
    (tmp, result)
}

/// Asserts that unpacking failed naming `entry` and saying `why`, and kept nothing.
fn assert_refused(tmp: &tempfile::TempDir, result: anyhow::Result<()>, entry: &str, why: &str) {
    let msg = format!("{:#}", result.expect_err("the tarball was unpacked"));
    assert!(
        msg.contains(&format!("`{entry}`")) && msg.contains(why),
        "{msg}"
    );
    assert!(msg.contains("nothing was kept"), "{msg}");
    assert!(
        !tmp.path().join("a/b/src").exists(),
        "the tree was left behind"
    );
}

#[test]
fn a_kernel_tree_unpacks_with_its_in_tree_links_and_modes() {
    let (tmp, result) = unpack_crafted(&[
        Crafted::GlobalHeader,
        Crafted::Dir("linux-6.1/"),
        Crafted::File("linux-6.1/Makefile", b"VERSION = 6\n"),
        // No entry for scripts/: parents are made as needed.
        Crafted::Script("linux-6.1/scripts/config", b"#!/bin/sh\n"),
        Crafted::Dir("linux-6.1/arch/arm/boot/dts/"),
        Crafted::File("linux-6.1/arch/arm/boot/dts/board.dts", b"/dts-v1/;\n"),
        Crafted::Symlink("linux-6.1/arch/arm64/boot/dts/arm", "../../../arm/boot/dts"),
        Crafted::Symlink("linux-6.1/tools/include/uapi", "./linux"),
        Crafted::HardLink("linux-6.1/Makefile.copy", "linux-6.1/Makefile"),
    ]);
    result.unwrap();
    let src = tmp.path().join("a/b/src");
    assert_eq!(
        std::fs::read(src.join("Makefile")).unwrap(),
        b"VERSION = 6\n"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(src.join("scripts/config"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "scripts stay executable");
    assert_eq!(
        std::fs::read(src.join("arch/arm64/boot/dts/arm/board.dts")).unwrap(),
        b"/dts-v1/;\n",
        "the in-tree symlink leads where it should"
    );
    assert_eq!(
        std::fs::read_link(src.join("tools/include/uapi")).unwrap(),
        Path::new("./linux")
    );
    assert_eq!(
        std::fs::read(src.join("Makefile.copy")).unwrap(),
        b"VERSION = 6\n"
    );
    assert!(!src.join("pax_global_header").exists());
}

#[test]
fn a_source_entry_climbing_out_with_dotdot_is_refused() {
    let (tmp, result) = unpack_crafted(&[
        Crafted::File("linux/Makefile", b"all:\n"),
        Crafted::File("linux/../escape", b"owned\n"),
    ]);
    assert!(
        !tmp.path().join("a/b/escape").exists(),
        "written outside the tree"
    );
    assert_refused(&tmp, result, "linux/../escape", "leaves the source tree");
}

#[test]
fn an_absolute_source_entry_is_refused() {
    let (tmp, result) = unpack_crafted(&[Crafted::File("/linux/etc/profile", b"owned\n")]);
    assert_refused(&tmp, result, "/linux/etc/profile", "is an absolute path");
}

#[test]
fn a_symlink_out_of_the_source_tree_and_a_file_written_through_it_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let (tmp, result) = unpack_crafted(&[
        Crafted::Symlink("linux/evil", &target),
        Crafted::File("linux/evil/owned", b"owned\n"),
    ]);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "written outside"
    );
    assert_refused(&tmp, result, "linux/evil", "symlink to an absolute path");
    // The same with a relative symlink climbing above the tree: `src/up` is `<tmp>/a`.
    let (tmp, result) = unpack_crafted(&[
        Crafted::Symlink("linux/up", "../.."),
        Crafted::File("linux/up/owned", b"owned\n"),
    ]);
    assert!(
        !tmp.path().join("a/owned").exists(),
        "written outside the tree"
    );
    assert_refused(&tmp, result, "linux/up", "symlink out of the source tree");
    // And one that could only be judged by following another symlink.
    let (tmp, result) = unpack_crafted(&[Crafted::Symlink("linux/sneaky", "arch/../../..")]);
    assert_refused(&tmp, result, "linux/sneaky", "climbs (`..`) after a name");
}

#[test]
fn a_file_is_never_written_through_a_symlink_even_inside_the_tree() {
    let (tmp, result) = unpack_crafted(&[
        Crafted::Dir("linux/real/"),
        Crafted::Symlink("linux/link", "real"),
        Crafted::File("linux/link/file", b"x\n"),
    ]);
    assert_refused(
        &tmp,
        result,
        "linux/link/file",
        "written through the symlink `link`",
    );
}

#[test]
fn a_hard_link_out_of_the_source_tree_is_refused() {
    use std::os::unix::fs::MetadataExt as _;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"secret\n").unwrap();
    let (tmp, result) =
        unpack_crafted(&[Crafted::HardLink("linux/stolen", secret.to_str().unwrap())]);
    assert_eq!(
        std::fs::metadata(&secret).unwrap().nlink(),
        1,
        "linked from the tree"
    );
    assert_refused(
        &tmp,
        result,
        "linux/stolen",
        "which is not a file unpacked before it",
    );
    // Inside the tree, but to a path not unpacked (yet): what would be there is unknown.
    let (tmp, result) = unpack_crafted(&[
        Crafted::HardLink("linux/early", "linux/later"),
        Crafted::File("linux/later", b"x\n"),
    ]);
    assert_refused(
        &tmp,
        result,
        "linux/early",
        "which is not a file unpacked before it",
    );
}

#[test]
fn special_files_in_a_source_tarball_are_refused() {
    let (tmp, result) = unpack_crafted(&[Crafted::Fifo("linux/pipe")]);
    assert_refused(&tmp, result, "linux/pipe", "no source tree has");
}

#[test]
fn a_source_tarball_past_its_caps_is_refused() {
    let names: Vec<String> = (0..20).map(|i| format!("linux/file{i}")).collect();
    let many: Vec<Crafted<'_>> = names.iter().map(|n| Crafted::File(n, b"x")).collect();
    let few_entries = TreeLimits {
        bytes: 1 << 30,
        entries: 10,
    };
    let (tmp, result) = unpack_crafted_within(&many, few_entries);
    let msg = format!("{:#}", result.unwrap_err());
    assert!(
        msg.contains("more than 10 entries") && msg.contains("nothing was kept"),
        "{msg}"
    );
    assert!(!tmp.path().join("a/b/src").exists());

    let big = vec![0u8; 2 << 20];
    let few_bytes = TreeLimits {
        bytes: 1 << 20,
        entries: 100,
    };
    let (tmp, result) = unpack_crafted_within(&[Crafted::File("linux/big", &big)], few_bytes);
    let msg = format!("{:#}", result.unwrap_err());
    assert!(
        msg.contains("the source, decompressed, is larger than 1 MiB")
            && msg.contains("nothing was kept"),
        "{msg}"
    );
    assert!(!tmp.path().join("a/b/src").exists());
}
