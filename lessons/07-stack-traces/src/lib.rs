//! Lesson 7, user side: tracex4's question, "who allocated?", answered with whole kernel
//! stacks. `stacks.bpf.o` goes on the slab allocator's entry point and counts, for one
//! thread, every stack the allocator is called from; this side names each return
//! address from `/proc/kallsyms` and prints the stacks as BCC's stackcount does.
//!
//! The workload creates processes with clone(2): each needs one `task_struct`, allocated
//! where the fork path calls the allocator. Exactly that many calls must come from there.

use anyhow::Context as _;
use aya::maps::{Array, HashMap, StackTraceMap};
use aya::programs::KProbe;
use bpflab_guest::workload::{self, current_tid};
use bpflab_guest::{Lab, Outcome};

/// The allocator's entry point by kernel (lesson 3 says why each).
const ALLOCATORS: [&str; 3] = [
    "kmem_cache_alloc_node",
    "kmem_cache_alloc_node_noprof",
    "kmem_cache_alloc",
];
/// Where the fork path asks for a task_struct, depending on what the compiler inlined:
/// dup_task_struct into copy_process, copy_process into kernel_clone (or _do_fork,
/// before 5.10).
const FORK_PATH: [&str; 4] = [
    "dup_task_struct",
    "copy_process",
    "kernel_clone",
    "_do_fork",
];
/// How many processes the workload creates.
const PROCESSES: u64 = 3;

/// One stack and how many calls came from it.
pub struct Stack {
    /// Calls from this stack.
    pub count: u64,
    /// Its return addresses, innermost first, as `function+0xoffset` (`None`: in no
    /// kernel function kallsyms knows).
    pub frames: Vec<(u64, Option<String>)>,
}

impl Stack {
    /// The function of frame `i`, without the suffixes of the compiler's copies of it
    /// (`copy_process.part.0`, `foo.isra.3`, `bar.constprop.0`).
    pub fn function(&self, i: usize) -> Option<&str> {
        let described = self.frames.get(i)?.1.as_deref()?;
        let name = described.split('+').next()?;
        Some(name.split('.').next().unwrap_or(name))
    }
}

/// What the program counted.
pub struct Counted {
    /// The stacks, most calls first.
    pub stacks: Vec<Stack>,
    /// Calls whose stack the kernel could not record.
    pub failed: u64,
}

/// Attaches `stacks.bpf.o` to `function`, runs `workload` in this thread with its calls
/// counted by stack, and names every frame. The calling lesson's lesson.toml says it needs
/// the stack trace map (4.6), which the guest makes sure of before the lesson runs.
pub fn count_stacks(
    lab: &mut Lab,
    function: &str,
    workload: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<Counted> {
    let mut bpf = lab.load("stacks.bpf.o")?;
    let program: &mut KProbe = bpf
        .program_mut("count_stack")
        .context("stacks.bpf.o has no function `count_stack`")?
        .try_into()?;
    program.load()?;
    program.attach(function, 0)?;
    lab.note(format!(
        "kprobe attached to {function}, counting by kernel stack"
    ));
    // Read before the workload: reading it under emulation takes a moment.
    lab.kallsyms()?;
    let mut control: Array<_, u64> =
        Array::try_from(bpf.map_mut("control").context("no map `control`")?)?;
    // Only this thread's calls: the workload's, not those of every task in the guest.
    control.set(0, u64::from(current_tid()), 0)?;
    let ran = workload();
    control.set(0, 0, 0)?;
    ran?;
    let failed = control.get(&1, 0)?;
    let counts: HashMap<_, u32, u64> =
        HashMap::try_from(bpf.map("counts").context("no map `counts`")?)?;
    let traces = StackTraceMap::try_from(bpf.map("stacks").context("no map `stacks`")?)?;
    let mut stacks = Vec::new();
    for entry in counts.iter() {
        let (id, count) = entry?;
        let trace = traces.get(&id, 0)?;
        let mut frames = Vec::new();
        for frame in trace.frames() {
            frames.push((frame.ip, lab.kallsyms()?.describe(frame.ip)));
        }
        stacks.push(Stack { count, frames });
    }
    stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.frames.cmp(&b.frames)));
    Ok(Counted { stacks, failed })
}

/// Prints each stack innermost frame first, then its count, as stackcount does.
pub fn print_stacks(lab: &Lab, counted: &Counted) {
    for stack in &counted.stacks {
        for (ip, described) in &stack.frames {
            match described {
                Some(name) => lab.print(format!("  {name}")),
                None => lab.print(format!("  {ip:#x} (in no known function)")),
            }
        }
        lab.print(format!("    {}", stack.count));
    }
}

/// What is wrong with stacks said to come from `function`, if anything: a frame no
/// kernel function holds, a stack that does not start in `function`, a call not recorded.
pub fn stack_problems(counted: &Counted, function: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if counted.failed > 0 {
        problems.push(format!("{} stacks not recorded", counted.failed));
    }
    for stack in &counted.stacks {
        if let Some((ip, _)) = stack.frames.iter().find(|(_, name)| name.is_none()) {
            problems.push(format!("return address {ip:#x} is in no kernel function"));
        }
        if stack.function(0) != Some(function) {
            problems.push(format!(
                "a stack starts in {:?}, not in {function}",
                stack.function(0)
            ));
        }
    }
    problems
}

/// Runs the lesson inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let allocator = lab.kernel_symbol(&ALLOCATORS)?;
    // One process first, not counted. A fork also needs a stack for the new thread, from
    // a per-CPU cache of freed ones or, when that is empty, from vmalloc (whose vmap_area
    // comes from the allocator: a second stack in the output, there or not depending on
    // what ran before). This process's stack, once freed, makes an empty cache less likely
    // when the counted ones need one, not impossible; the check below counts only what
    // the fork path itself allocates.
    workload::clone_children(1)?;
    let counted = count_stacks(lab, &allocator, || {
        workload::clone_children(PROCESSES as usize)
    })?;
    print_stacks(lab, &counted);
    let calls: u64 = counted.stacks.iter().map(|s| s.count).sum();
    let from_fork: u64 = counted
        .stacks
        .iter()
        .filter(|s| s.function(1).is_some_and(|f| FORK_PATH.contains(&f)))
        .map(|s| s.count)
        .sum();
    let mut problems = stack_problems(&counted, &allocator);
    problems.extend(fork_problem(&allocator, from_fork));
    let per_process = from_fork / PROCESSES;
    let what = match per_process {
        1 => "its task_struct".to_string(),
        n => format!("{n} objects, its task_struct among them,"),
    };
    Ok(match problems.is_empty() {
        true => Outcome::Passed(format!(
            "{PROCESSES} processes created: {calls} calls of {allocator} from {}, {from_fork} \
             from the fork path: {what} for each",
            match counted.stacks.len() {
                1 => "1 stack".to_string(),
                n => format!("{n} stacks"),
            }
        )),
        false => Outcome::Failed(problems.join("; ")),
    })
}

/// What is wrong with `from_fork` calls of `allocator` from the fork path for the
/// workload's processes. Where the slab allocator has a `_node` entry point (kernels
/// built with NUMA, as distributions build them) the fork path calls it for the
/// task_struct alone: exactly one per process. Without NUMA, `kmem_cache_alloc_node` is
/// `kmem_cache_alloc` inlined, which the fork path also calls for the new process's
/// signal handlers, files, memory map and more: as many for each process, since each is
/// a copy of the same one.
fn fork_problem(allocator: &str, from_fork: u64) -> Option<String> {
    let exact = allocator.starts_with("kmem_cache_alloc_node");
    let right = match exact {
        true => from_fork == PROCESSES,
        false => from_fork >= PROCESSES && from_fork.is_multiple_of(PROCESSES),
    };
    let expected = match exact {
        true => format!("exactly {PROCESSES}, one task_struct each"),
        false => "the same number for each".to_string(),
    };
    (!right).then(|| {
        format!(
            "{PROCESSES} processes created, but {from_fork} allocations called from the fork \
             path ({}), not {expected}",
            FORK_PATH.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frames_function_loses_offset_and_compiler_suffixes() {
        let stack = Stack {
            count: 1,
            frames: vec![
                (1, Some("kmem_cache_alloc_node+0x0".into())),
                (2, Some("copy_process.part.0+0x1a4".into())),
                (3, None),
            ],
        };
        assert_eq!(stack.function(0), Some("kmem_cache_alloc_node"));
        assert_eq!(stack.function(1), Some("copy_process"));
        assert_eq!(stack.function(2), None);
        assert_eq!(stack.function(3), None);
    }
}
