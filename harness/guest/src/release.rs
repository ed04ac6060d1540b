//! The running kernel's version, for the few behaviours no probe can ask the kernel about
//! (features are probed, never read from the version: see [`crate::features`]).

/// The running kernel's major and minor version, from uname(2); (0, 0) if unreadable.
pub fn kernel() -> (u32, u32) {
    // SAFETY: an all-zero utsname is a valid value of this plain C struct.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname(2) writes only into the struct it is given.
    if unsafe { libc::uname(&mut name) } != 0 {
        return (0, 0);
    }
    // SAFETY: uname(2) NUL-terminates each field, and the struct began zeroed.
    let release = unsafe { std::ffi::CStr::from_ptr(name.release.as_ptr()) };
    parse(&release.to_string_lossy())
}

/// The major and minor version at the start of a release string (`4.15.0-213-generic`,
/// `7.2.13+deb14-cloud-amd64`, `7.3-arm64`).
fn parse(release: &str) -> (u32, u32) {
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_give_their_major_and_minor() {
        assert_eq!(parse("4.15.0-213-generic"), (4, 15));
        assert_eq!(parse("7.2.13+deb14-cloud-amd64"), (7, 2));
        assert_eq!(parse("7.3-arm64"), (7, 3));
        assert_eq!(parse(""), (0, 0));
        assert!(kernel() >= (2, 6));
    }
}
