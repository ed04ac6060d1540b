//! A program calling a helper the running kernel does not have: a missing feature, not a
//! bug in the lesson, so it is reported as unsupported, with the version that brought it.
//!
//! The verifier refuses such a call with "unknown func" (the helper exists, but not for
//! this program type, or not yet) or "invalid func" (an id past the kernel's last), then
//! the helper's number: `unknown func 130` on 4.4, `unknown func bpf_ringbuf_output#130`
//! since 4.15, which also names it.

/// Helpers by id (`enum bpf_func_id` in `include/uapi/linux/bpf.h`), with the release that
/// brought each to tracing programs: the ones lessons use, and the common ones after them.
const HELPERS: &[(u32, &str, &str)] = &[
    (1, "bpf_map_lookup_elem", "3.19"),
    (2, "bpf_map_update_elem", "3.19"),
    (3, "bpf_map_delete_elem", "3.19"),
    (4, "bpf_probe_read", "4.1"),
    (5, "bpf_ktime_get_ns", "4.1"),
    (6, "bpf_trace_printk", "4.1"),
    (7, "bpf_get_prandom_u32", "4.1"),
    (8, "bpf_get_smp_processor_id", "4.1"),
    (12, "bpf_tail_call", "4.2"),
    (14, "bpf_get_current_pid_tgid", "4.2"),
    (15, "bpf_get_current_uid_gid", "4.2"),
    (16, "bpf_get_current_comm", "4.2"),
    (22, "bpf_perf_event_read", "4.3"),
    (25, "bpf_perf_event_output", "4.4"),
    (27, "bpf_get_stackid", "4.6"),
    (35, "bpf_get_current_task", "4.8"),
    (45, "bpf_probe_read_str", "4.11"),
    (67, "bpf_get_stack", "4.18"),
    (109, "bpf_send_signal", "5.3"),
    (112, "bpf_probe_read_user", "5.5"),
    (113, "bpf_probe_read_kernel", "5.5"),
    (114, "bpf_probe_read_user_str", "5.5"),
    (115, "bpf_probe_read_kernel_str", "5.5"),
    (125, "bpf_ktime_get_boot_ns", "5.8"),
    (130, "bpf_ringbuf_output", "5.8"),
    (131, "bpf_ringbuf_reserve", "5.8"),
    (132, "bpf_ringbuf_submit", "5.8"),
    (133, "bpf_ringbuf_discard", "5.8"),
    (156, "bpf_task_storage_get", "5.11"),
    (158, "bpf_get_current_task_btf", "5.11"),
    (165, "bpf_snprintf", "5.13"),
    (173, "bpf_get_func_ip", "5.15"),
    (174, "bpf_get_attach_cookie", "5.15"),
];

/// Why the kernel cannot run a program whose load failed with `message` (the whole error
/// chain, verifier log included), if the reason is a helper it lacks.
///
/// "unknown func" for a helper this table does not list is not taken for a missing
/// feature: it is as likely a helper the program type may not call (bpf_skb_load_bytes
/// from a kprobe, mistake 94), which is the program's fault, and stays a failure.
pub fn missing_helper(message: &str) -> Option<String> {
    let (refusal, after) = ["unknown func ", "invalid func "]
        .iter()
        .find_map(|refusal| {
            message
                .split_once(refusal)
                .map(|(_, after)| (*refusal, after))
        })?;
    let word = after.split_whitespace().next()?;
    // "130" (4.4) or "bpf_ringbuf_output#130" (4.15 on; "unknown#195896080" past the end).
    let digits = word.rsplit('#').next()?;
    let digits: String = digits.chars().take_while(char::is_ascii_digit).collect();
    let id: u32 = digits.parse().ok()?;
    Some(match HELPERS.iter().find(|(known, _, _)| *known == id) {
        Some((_, name, since)) => {
            format!("needs the helper {name} (Linux {since}+), which this kernel's verifier does not know for this program")
        }
        // Past the kernel's last helper: newer than this kernel, whatever it is.
        None if refusal == "invalid func " => format!(
            "calls BPF helper #{id}, which this kernel's verifier does not know for this program"
        ),
        None => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_helper_and_its_version_from_a_4_4_log() {
        let log = "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22). Verifier \
                   output: 0: (b7) r1 = 0\n1: (85) call 130\nunknown func 130\n";
        assert_eq!(
            missing_helper(log).as_deref(),
            Some(
                "needs the helper bpf_ringbuf_output (Linux 5.8+), which this kernel's verifier \
                 does not know for this program"
            )
        );
    }

    #[test]
    fn reads_the_named_form_of_later_kernels() {
        let log = "Verifier output: 17: (85) call bpf_probe_read_kernel#113\n\
                   unknown func bpf_probe_read_kernel#113\n";
        assert!(missing_helper(log)
            .unwrap()
            .starts_with("needs the helper bpf_probe_read_kernel (Linux 5.5+)"));
        let past_the_end = "invalid func unknown#195896080\n";
        assert_eq!(
            missing_helper(past_the_end).as_deref(),
            Some(
                "calls BPF helper #195896080, which this kernel's verifier does not know for \
                 this program"
            )
        );
    }

    #[test]
    fn a_helper_not_listed_as_new_is_the_programs_fault_not_the_kernels() {
        // bpf_skb_load_bytes exists since 4.5, for networking programs: a kprobe calling it
        // is a mistake (94), not a kernel without the helper.
        let log = "6: (85) call bpf_skb_load_bytes#26\nunknown func bpf_skb_load_bytes#26\n";
        assert_eq!(missing_helper(log), None);
    }

    #[test]
    fn other_refusals_are_not_a_missing_helper() {
        assert_eq!(
            missing_helper("R0 invalid mem access 'map_value_or_null'"),
            None
        );
        assert_eq!(
            missing_helper("invalid indirect read from stack off -48+0 size 16"),
            None
        );
    }

    #[test]
    fn the_table_is_ordered_and_unique() {
        assert!(HELPERS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
