//! A program's version, from its `--version`: asked once per binary and remembered in
//! the cache by the file's size and modification time (asking QEMU or clang costs a
//! tenth of a second or more; a lesson run should not pay it every time).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::digest;
use crate::tools::Program;

/// The first `major.minor[.patch]` after the word "version" in `program --version`'s
/// output (`QEMU emulator version 7.2.22`, `Debian clang version 14.0.6`), remembered
/// in `cache`; `None` if the program does not run or says no version.
pub fn version(program: &Program, cache: &Path) -> Option<String> {
    let meta = std::fs::metadata(&program.path).ok()?;
    let identity = format!(
        "{} {} {} {}",
        program.path.display(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    );
    let memo = cache
        .join("provision/versions")
        .join(digest::sha256_bytes(identity.as_bytes()));
    if let Some(known) = std::fs::read_to_string(&memo)
        .ok()
        .filter(|v| major_minor(v).is_some())
    {
        return Some(known);
    }
    let output = program.command().arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let found = parse(&String::from_utf8_lossy(&output.stdout))?;
    remember(&memo, &found);
    Some(found)
}

/// Writes `version` to `memo` whole or not at all (under another name, then renamed): a
/// full disk or a crash leaves no half-written version behind.
fn remember(memo: &Path, version: &str) {
    let Some(dir) = memo.parent() else { return };
    std::fs::create_dir_all(dir).ok();
    // A temporary file not persisted is removed when dropped.
    if let Ok(mut file) = tempfile::NamedTempFile::new_in(dir) {
        if std::io::Write::write_all(&mut file, version.as_bytes()).is_ok() {
            file.persist(memo).ok();
        }
    }
}

/// What [`version`] reads out of a `--version` text.
pub fn parse(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "version")?;
    let word = words.next()?;
    let version: String = word
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (version.contains('.')).then_some(version)
}

/// (major, minor) of a version.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_the_programs_print() {
        assert_eq!(
            parse("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"),
            Some("7.2.22".into())
        );
        assert_eq!(
            parse("Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n"),
            Some("14.0.6".into())
        );
        assert_eq!(
            parse("Ubuntu clang version 18.1.3 (1ubuntu1)"),
            Some("18.1.3".into())
        );
        assert_eq!(parse("no such thing"), None);
        assert_eq!(major_minor("14.0.6"), Some((14, 0)));
    }
}
