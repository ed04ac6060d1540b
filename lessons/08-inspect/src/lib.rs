//! Lesson 8, user side: load and attach a small kprobe with a map, then look at it the
//! way *Learning eBPF* does, from outside, with bpftool (Debian's, which bpflab puts in
//! the guest): the program as the kernel holds it (`prog show`), its instructions after
//! the verifier rewrote them (`prog dump xlated`) and as native code (`prog dump jited`),
//! its map's contents (`map dump`), where the kernel put the probe (`kprobes/list`, and
//! why `kprobe_events` does not list it), and what this kernel offers (`feature probe`).
//!
//! Each look is checked against what aya itself knows: the same id, tag, map and count.

use std::process::Command;

use anyhow::{bail, ensure, Context as _};
use aya::maps::Array;
use aya::programs::KProbe;
use bpflab_guest::{Lab, Outcome};

/// How many times the workload calls getppid(2): the count the map must hold.
const CALLS: u64 = 5;
/// Where bpflab puts bpftool in the guest.
const BPFTOOL: &str = "/usr/sbin/bpftool";

/// Runs the lesson inside the guest.
pub fn run(lab: &mut Lab) -> anyhow::Result<Outcome> {
    let mut bpf = lab.load("count.bpf.o")?;
    let target = lab.syscall_fnname("getppid")?;
    let program: &mut KProbe = bpf
        .program_mut("count_calls")
        .context("count.bpf.o has no function `count_calls`")?
        .try_into()?;
    program.load()?;
    program.attach(&target, 0)?;
    // What aya knows of the program, from the kernel (BPF_OBJ_GET_INFO_BY_FD).
    let info = program.info()?;
    let (id, tag) = (info.id(), format!("{:016x}", info.tag()));
    let map_ids = info.map_ids()?.unwrap_or_default();
    let &[map_id] = map_ids.as_slice() else {
        bail!("the kernel says count_calls uses maps {map_ids:?}, not one");
    };
    lab.note(format!(
        "kprobe count_calls attached to {target}: program id {id}, tag {tag}, map id {map_id}"
    ));

    // The workload: CALLS calls of getppid(2), each one a run of count_calls.
    for _ in 0..CALLS {
        let _parent = std::os::unix::process::parent_id();
    }

    let shown = bpftool(lab, &["prog", "show", "id", &id.to_string()])?;
    ensure!(
        shown.contains(&format!("{id}: kprobe  name count_calls  tag {tag}"))
            && shown.contains(&format!("map_ids {map_id}")),
        "bpftool's `prog show` does not match what aya loaded (id {id}, tag {tag}, map {map_id})"
    );
    let xlated = bpftool(lab, &["prog", "dump", "xlated", "id", &id.to_string()])?;
    // Older kernels hand bpftool the map's kernel address in the 64-bit load, not its id
    // (`r1 = 0xffff…`); the kernel's own map pointer is what the verifier put there.
    if !xlated.contains(&format!("map[id:{map_id}]")) {
        ensure!(
            xlated.contains("r1 = 0xffff"),
            "the translated program neither names map {map_id} nor loads a kernel address"
        );
        lab.note(format!(
            "this kernel gives the translated program map {map_id}'s kernel address, not its id"
        ));
    }
    jited(lab, id, info.size_jitted())?;

    let dump = bpftool(lab, &["map", "dump", "id", &map_id.to_string()])?;
    let calls: Array<_, u64> = Array::try_from(bpf.map("calls").context("no map `calls`")?)?;
    let count = calls.get(&0, 0)?;
    // With the map's BTF (4.18 and later), bpftool prints the value as a number; without
    // it, as the value's bytes (little-endian here).
    let raw = format!("value: {:02x} 00 00 00 00 00 00 00", CALLS);
    let typed = dump.contains(&format!("\"value\": {CALLS}"));
    if !typed && dump.contains(&raw) {
        lab.note("the map has no BTF on this kernel: bpftool shows its value as raw bytes");
    }
    ensure!(
        count == CALLS && (typed || dump.contains(&raw)),
        "{CALLS} calls made; aya reads {count} from the map, and bpftool shows:\n{dump}"
    );
    kprobes(lab, &target)?;
    features(lab)?;
    Ok(Outcome::Passed(format!(
        "{CALLS} calls of {target} counted; bpftool showed the program and map aya loaded"
    )))
}

/// Runs bpftool with `args`, shows the command and everything it printed (its errors
/// too), and returns its standard output; an error if it failed.
fn bpftool(lab: &Lab, args: &[&str]) -> anyhow::Result<String> {
    let (ok, out, err) = bpftool_status(lab, args)?;
    ensure!(ok, "bpftool {} failed: {err}", args.join(" "));
    Ok(out)
}

/// Like [`bpftool`], and a failure is returned, not an error: (success, stdout, stderr).
fn bpftool_status(lab: &Lab, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    lab.print(format!("$ bpftool {}", args.join(" ")));
    let output = Command::new(BPFTOOL)
        .args(args)
        .output()
        .with_context(|| format!("running {BPFTOOL}"))?;
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    for line in out.lines().chain(err.lines()) {
        lab.print(line);
    }
    Ok((output.status.success(), out, err))
}

/// The JIT's native code: bpftool disassembles it only when built with a disassembler
/// (libbfd or LLVM), which Debian's is not; its size is in `prog show` either way.
fn jited(lab: &Lab, id: u32, size: u32) -> anyhow::Result<()> {
    let (ok, out, err) = bpftool_status(lab, &["prog", "dump", "jited", "id", &id.to_string()])?;
    if ok {
        ensure!(!out.trim().is_empty(), "bpftool printed no native code");
        return Ok(());
    }
    ensure!(
        err.contains("No libbfd support") || err.contains("No JIT disassembly support"),
        "bpftool prog dump jited failed: {err}"
    );
    lab.note(format!(
        "this bpftool has no disassembler; the JIT's {size} bytes of native code are there"
    ));
    Ok(())
}

/// Where the kernel keeps kprobes (debugfs), and where the trace-event interface lists
/// the ones made through it (tracefs).
const KPROBES_LIST: &str = "/sys/kernel/debug/kprobes/list";
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Every kprobe the kernel has is in `kprobes/list`; `kprobe_events` lists only those
/// made by writing to it. aya made its probe with perf_event_open(2) (the kprobe PMU,
/// Linux 4.17 and later): in the first, not the second, until one is made by hand.
/// `kprobes/list` names each probe by its address's symbol, which need not be the name
/// it was asked for (an alias at the same address), so its lines are found by address:
/// the function's, or just past its first instruction (`endbr64`, where the kernel is
/// built for x86's indirect branch tracking).
fn kprobes(lab: &Lab, target: &str) -> anyhow::Result<()> {
    let tracefs = TRACEFS
        .iter()
        .find(|dir| std::path::Path::new(dir).join("kprobe_events").exists())
        .context("no tracefs with kprobe_events")?;
    let events = format!("{tracefs}/kprobe_events");
    let address = address_of(target)?;
    // bpflab found `target` by placing a kprobe of its own there (syscall_fnname), kept
    // until the lesson ends: remove it now, or the list shows two.
    lab.settle_probes();
    lab.print(format!("$ grep ' {target}$' /proc/kallsyms"));
    lab.print(format!("{address:016x} T {target}"));
    let listed = show_file(lab, KPROBES_LIST, address, target)?;
    ensure!(
        listed == 1,
        "{KPROBES_LIST} lists {listed} probes on {target}, not aya's one"
    );
    // Before 4.17 there is no kprobe PMU, and aya writes its probe to kprobe_events too.
    let before = show_events(lab, &events, target)?;
    match before {
        0 => {}
        1 => lab
            .note("aya made its probe through kprobe_events: this kernel has no kprobe PMU (4.17)"),
        n => bail!("kprobe_events lists {n} probes on {target}, not none (or aya's alone)"),
    }
    let probe = format!("p:bpflab_by_hand {target}");
    lab.print(format!("$ echo '{probe}' >> {events}"));
    append(&events, &probe)?;
    let by_hand = show_events(lab, &events, target);
    let listed = show_file(lab, KPROBES_LIST, address, target);
    append(&events, "-:bpflab_by_hand")?;
    ensure!(
        by_hand? == before + 1,
        "kprobe_events does not hold the probe written"
    );
    ensure!(
        listed? == 2,
        "{KPROBES_LIST} does not list the probe made by hand beside aya's"
    );
    Ok(())
}

/// The address of the kernel symbol `name`, from `/proc/kallsyms`.
fn address_of(name: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").context("reading /proc/kallsyms")?;
    text.lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.next()?;
            (fields.nth(1)? == name).then(|| u64::from_str_radix(address, 16).ok())?
        })
        .with_context(|| format!("/proc/kallsyms has no {name}"))
}

/// Whether a line of `kprobes/list` is a probe at `address` or within its first
/// instruction's reach (the 4 bytes of `endbr64`), or else one named `target` (4.15
/// prints `(ptrval)` where the list's addresses were, as it does for every `%p`).
fn probes(line: &str, address: u64, target: &str) -> bool {
    let mut fields = line.split_whitespace();
    let at = fields.next().and_then(|a| u64::from_str_radix(a, 16).ok());
    at.is_some_and(|at| (address..=address + 4).contains(&at))
        || fields.any(|f| f.strip_prefix(target).is_some_and(|r| r.starts_with("+0x")))
}

fn append(path: &str, line: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    writeln!(file, "{line}").with_context(|| format!("writing `{line}` to {path}"))
}

/// Shows the lines of `path` about the probed function (the probes at `address`, or
/// naming `target`: other lessons' probes may be going away still, and a kernel may list
/// probes of its own) and returns how many there were.
fn show_file(lab: &Lab, path: &str, address: u64, target: &str) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| probes(l, address, target))
        .collect();
    lab.print(format!("$ cat {path}   (the probes at that address)"));
    for line in &lines {
        lab.print(line.trim_end());
    }
    Ok(lines.len())
}

/// Shows the lines of `kprobe_events` that probe `target` and returns how many there
/// were (a kernel's own trace events, if it has any, are not the lesson's).
fn show_events(lab: &Lab, path: &str, target: &str) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().any(|f| f == target))
        .collect();
    lab.print(format!("$ cat {path}"));
    for line in &lines {
        lab.print(line.trim_end());
    }
    Ok(lines.len())
}

/// `bpftool feature probe kernel` asks the kernel what it supports by trying it (a
/// program of each type, a map of each type, each helper in each program type): 2,000
/// lines. Shown: what it says of the system, of kprobe programs and array maps, and how
/// many helpers a kprobe program may call.
fn features(lab: &Lab) -> anyhow::Result<()> {
    lab.print("$ bpftool feature probe kernel   (an excerpt)");
    let output = Command::new(BPFTOOL)
        .args(["feature", "probe", "kernel"])
        .output()
        .with_context(|| format!("running {BPFTOOL}"))?;
    ensure!(output.status.success(), "bpftool feature probe failed");
    // Without the kernel's config (in /boot or /proc/config.gz), it says it skips it.
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        lab.print(line);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut helpers = None;
    for line in text.lines() {
        // Its CONFIG_ lines say "is not set" for every option when it found no config.
        let system = !line.starts_with("CONFIG_")
            && (line.contains("JIT") || line.contains("bpf() syscall"));
        let ours = line.contains("program_type kprobe") || line.contains("map_type array ");
        if system || ours {
            lab.print(line);
        }
        if line.starts_with("eBPF helpers supported for program type kprobe:") {
            lab.print(line);
            helpers = Some(0);
        } else if let Some(n) = helpers.as_mut().filter(|_| line.starts_with("\t- ")) {
            *n += 1;
            if line.contains("bpf_map_lookup_elem") || line.contains("bpf_trace_printk") {
                lab.print(line);
            }
        } else if let Some(n) = helpers.take() {
            lab.print(format!("\t… {n} helpers in all"));
        }
    }
    ensure!(
        text.contains("eBPF program_type kprobe is available")
            && text.contains("eBPF map_type array is available"),
        "bpftool does not find kprobe programs and array maps, which this lesson just used"
    );
    Ok(())
}
