//! The lessons compiled into this agent. Adding a lesson: a crate under `lessons/`, a
//! dependency in this crate's Cargo.toml, and a line here.

use bpflab_guest::{Lab, Outcome};

/// A lesson's entry point.
pub type LessonFn = fn(&mut Lab) -> anyhow::Result<Outcome>;

/// Lesson number → entry point.
pub fn find(number: u32) -> Option<LessonFn> {
    match number {
        1 => Some(lesson_01_hello::run),
        2 => Some(lesson_02_tcp::run),
        3 => Some(lesson_03_tracex4::run),
        11 => Some(lesson_11_hello_comm::run),
        21 => Some(lesson_21_per_thread::run),
        31 => Some(lesson_31_two_seconds::run),
        90 => Some(lesson_90_nullcheck::run),
        91 => Some(lesson_91_renamed::run),
        95 => Some(lesson_95_hostile::run),
        _ => None,
    }
}
