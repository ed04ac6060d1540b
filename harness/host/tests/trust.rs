//! The chain of trust from Debian's signing keys to the kernel bpflab boots, attacked for
//! real: a tampering HTTP proxy on loopback ([`common::proxy`]) sits between bpflab and
//! the host's Debian mirror and forges what an attacker on the network could. Every attack
//! must end in a clear refusal, with nothing downloaded past the point where the forgery
//! was found. (Ubuntu's archive meets the same attacks in `ubuntu.rs`.)
//!
//! These runs see no `gpgv` and no `gpg` on their PATH: bpflab checks signatures itself,
//! with the keys it ships, and needs nothing from the host for it.

// Test helpers unwrap: a panic there is the test failing, with the value shown.
#![allow(clippy::unwrap_used)]

mod common;

use bpflab::kernel::apt::Distribution;
use common::proxy::{assert_refused, mirror_of, Attack};

/// The proxy, in front of the host's Debian mirror, which these tests need.
fn proxy(attack: Attack) -> common::proxy::Proxy {
    assert!(
        mirror_of(Distribution::Debian).is_some(),
        "the tests need a Debian mirror (the host's apt sources, or BPFLAB_DEBIAN_MIRROR)"
    );
    common::proxy::Proxy::start(attack)
}

#[test]
fn a_section_appended_after_the_inrelease_signature_is_never_read() {
    let proxy = proxy(Attack::AppendAfterSignature);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "5.10", "--refresh-kernel"]);
    assert_refused(&output, &stderr, "InRelease is refused");
    assert!(
        !proxy.requested("/InRelease").is_empty(),
        "{:?}",
        proxy.requested("")
    );
    assert_eq!(
        proxy.requested("Packages"),
        Vec::<String>::new(),
        "the forged index was fetched"
    );
    assert_eq!(proxy.requested(".deb"), Vec::<String>::new());
}

#[test]
fn an_unsigned_inrelease_is_refused_without_gpgv_on_the_host() {
    let proxy = proxy(Attack::StripSignature);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "5.10", "--refresh-kernel"]);
    assert_refused(&output, &stderr, "not a well-formed OpenPGP signed message");
    assert_eq!(proxy.requested("Packages"), Vec::<String>::new());
}

#[test]
fn a_pinned_kernel_that_fails_its_hash_is_never_replaced() {
    assert!(
        mirror_of(Distribution::Debian).is_some(),
        "needs a Debian mirror"
    );
    common::proxy::a_corrupt_pinned_kernel_is_refused("6.1");
}

#[test]
fn a_pinned_kernel_missing_from_the_mirror_is_never_replaced() {
    let proxy = proxy(Attack::HideDebs);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "6.1"]);
    assert_refused(&output, &stderr, "not found on the mirror");
    assert!(
        stderr.contains("kernels update"),
        "says how to move on: {stderr}"
    );
    assert_eq!(
        proxy.requested("InRelease"),
        Vec::<String>::new(),
        "no other package was sought"
    );
}

#[test]
fn a_package_that_fails_its_signed_hash_ends_the_search() {
    let proxy = proxy(Attack::CorruptDebs);
    let (output, stderr) = proxy.bpflab(&["lesson", "1", "--kernel", "6.1", "--refresh-kernel"]);
    assert_refused(&output, &stderr, "no other package was tried");
    assert_eq!(
        proxy.requested(".deb").len(),
        1,
        "{:?}",
        proxy.requested(".deb")
    );
}
