#!/usr/bin/env bash
# Re-runs what the book shows from book/src/captured/ that no test snapshot holds: real
# runs whose output changes from run to run (addresses, counts) or that show a failure on
# purpose. Run from anywhere; it takes a minute or two (each run boots a VM).
set -euo pipefail
cd "$(dirname "$0")/.."
out=book/src/captured

# An exercise as shipped (it fails, saying what is missing), and a solution whose cache
# addresses and counts differ from run to run.
cargo run -q -- lesson 102 --kernel 6.1 > "$out/lesson102-6.1-x86_64.txt" 2>&1 || true
cargo run -q -- lesson 32 --kernel 6.1 > "$out/lesson32-6.1-x86_64.txt" 2>&1

# Lessons 5 and 6 on kernels that lack part of what they need (Ubuntu's 5.4, without the
# ring buffer; Ubuntu's 4.4, without per-CPU maps and LRU hashes: both need an Ubuntu
# mirror), and solution 6.1, whose sleeps take different times on every run.
cargo run -q -- lesson 5 --kernel 5.4 > "$out/lesson5-5.4.txt" 2>&1 || true
cargo run -q -- lesson 6 --kernel 4.4 > "$out/lesson6-4.4.txt" 2>&1 || true
cargo run -q -- lesson 61 --kernel 6.1 > "$out/lesson61-6.1.txt" 2>&1

# The setup chapter: lesson 1 with an empty cache (it downloads the pinned kernel), then
# again with the default cache, warm. Both with --timings.
rm -rf /tmp/bpflab-cold
BPFLAB_CACHE_DIR=/tmp/bpflab-cold cargo run -q -- lesson 1 --timings > "$out/setup-first-run.txt" 2>&1
rm -rf /tmp/bpflab-cold
cargo run -q -- lesson 1 --timings > "$out/setup-warm-run.txt" 2>&1

# The raw trace_pipe line the machinery chapter takes apart (its figure,
# figures/trace-line.svg, quotes the same fields: tests/book.rs checks it): the first
# greeting of the run above, without the "│ " the live view puts before guest lines.
grep -m1 'bpf_trace_printk' "$out/setup-first-run.txt" | sed 's/^│ //' > "$out/trace-line.txt"

# The sections of a lesson's object, as the harness compiles it into
# target/bpflab/bpf/<arch>/<lesson>/ (lesson 2 is run first so that it exists and is
# current), and of book/examples/legacy_maps.bpf.c, compiled with the same flags
# (bpflab::image::bpf::clang_flags) into target/bpflab/book/.
cargo run -q -- lesson 2 --part counter --kernel 6.1 > /dev/null 2>&1
llvm-objdump -h target/bpflab/bpf/x86_64/02-tcp/counter.bpf.o > "$out/objdump-h-counter.txt"
mkdir -p target/bpflab/book
clang -O2 -g -Wall -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu \
    -c book/examples/legacy_maps.bpf.c -o target/bpflab/book/legacy_maps.bpf.o
llvm-objdump -h target/bpflab/book/legacy_maps.bpf.o > "$out/objdump-h-legacy-maps.txt"
# Lesson 44's chapter: the same counter's Rust twin, as bpflab builds it (cargo and
# bpf-linker) into the same directory as the C objects.
cargo run -q -- lesson 44 --part rust --kernel 6.1 > /dev/null 2>&1
llvm-objdump -h target/bpflab/bpf/x86_64/44-rust-counter/counter-rs.bpf.o \
    > "$out/objdump-h-counter-rs.txt"

# Lesson 41's chapter: tcpdump's classic program (`-d` listing, `-dd` C array), when
# tcpdump is installed, and the eBPF socket filter as clang compiled it, with its C lines
# (`llvm-objdump -S`, from the debug info), from the object the harness built.
if command -v tcpdump > /dev/null; then
    tcpdump -d 'tcp dst port 80' > "$out/tcpdump-tcp-dst-port-80.txt" 2>/dev/null
    tcpdump -dd 'tcp dst port 80' > "$out/tcpdump-dd-tcp-dst-port-80.txt" 2>/dev/null
fi
# Lesson 8's chapter: the object as clang compiled it, to compare with what bpftool shows
# of it once the kernel translated it.
cargo run -q -- lesson 8 --kernel 6.1 > /dev/null 2>&1
llvm-objdump -S --no-show-raw-insn target/bpflab/bpf/x86_64/08-inspect/count.bpf.o \
    > "$out/objdump-S-inspect.txt"
cargo run -q -- lesson 41 --part extended --kernel 6.1 > /dev/null 2>&1
llvm-objdump -S --no-show-raw-insn target/bpflab/bpf/x86_64/41-socket-filter/filter.bpf.o \
    > "$out/objdump-S-socket-filter.txt"
# The same program on 4.15, before the verifier rewrote packet loads (needs an Ubuntu
# mirror, as the kernel-versions chapter says; skipped without one).
if [ -n "${BPFLAB_UBUNTU_MIRROR:-}" ]; then
    cargo run -q -- lesson 41 --part extended --kernel 4.15 > "$out/lesson41-4.15.txt" 2>&1
fi

# Exercise 41.1 as shipped: it passes one side of the conversation, and says so.
cargo run -q -- lesson 4101 --kernel 6.1 > "$out/lesson4101-6.1-x86_64.txt" 2>&1 || true

# Exercise 42.1 as shipped: it drops all UDP, and says so.
cargo run -q -- lesson 4201 --kernel 6.1 > "$out/lesson4201-6.1-x86_64.txt" 2>&1 || true

# Exercise 43.1 as shipped: it drops the echo requests too, and says so.
cargo run -q -- lesson 4301 --kernel 6.1 > "$out/lesson4301-6.1-x86_64.txt" 2>&1 || true
# Exercise 44.1 as shipped: its Rust counter has no entry for the bytes, and says so.
cargo run -q -- lesson 4401 --kernel 6.1 > "$out/lesson4401-6.1-x86_64.txt" 2>&1 || true
