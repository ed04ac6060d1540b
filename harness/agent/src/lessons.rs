//! The lessons compiled into this agent: every directory under `lessons/`. The build
//! script (`build/registry.rs`) generates the registry from their `lesson.toml` files and
//! compiles each lesson's `src/lib.rs` in as a module, so there is nothing to register
//! by hand, and a lesson that does not build is a build error of the agent.

use bpflab_guest::{Lab, Outcome};

/// A lesson's entry point.
pub type LessonFn = fn(&mut Lab) -> anyhow::Result<Outcome>;

include!(concat!(env!("OUT_DIR"), "/registry.rs"));
