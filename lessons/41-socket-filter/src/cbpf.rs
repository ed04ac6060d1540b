//! Classic BPF: the book's `tcp dst port 80` program as `tcpdump -dd` prints it, and a
//! disassembler that prints a program the way `tcpdump -d` does (libpcap's
//! `bpf_image`), to show what the kernel kept.

use bpflab_guest::packets::ClassicInsn;

/// `tcpdump -dd 'tcp dst port 80'` (tcpdump 4.99, Ethernet): `{ code, jt, jf, k }`.
pub const TCP_DST_PORT_80: [ClassicInsn; 16] = [
    insn(0x28, 0, 0, 0x0000000c),
    insn(0x15, 0, 4, 0x000086dd),
    insn(0x30, 0, 0, 0x00000014),
    insn(0x15, 0, 11, 0x00000006),
    insn(0x28, 0, 0, 0x00000038),
    insn(0x15, 8, 9, 0x00000050),
    insn(0x15, 0, 8, 0x00000800),
    insn(0x30, 0, 0, 0x00000017),
    insn(0x15, 0, 6, 0x00000006),
    insn(0x28, 0, 0, 0x00000014),
    insn(0x45, 4, 0, 0x00001fff),
    insn(0xb1, 0, 0, 0x0000000e),
    insn(0x48, 0, 0, 0x00000010),
    insn(0x15, 0, 1, 0x00000050),
    insn(0x6, 0, 0, 0x00040000),
    insn(0x6, 0, 0, 0x00000000),
];

/// What `tcpdump -d 'tcp dst port 80'` printed, as the book shows it.
pub const TCPDUMP_D: &str = include_str!("../../../book/src/captured/tcpdump-tcp-dst-port-80.txt");

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> ClassicInsn {
    ClassicInsn { code, jt, jf, k }
}

/// One line per instruction, as `tcpdump -d` prints them.
pub fn disassemble(program: &[ClassicInsn]) -> Vec<String> {
    program
        .iter()
        .enumerate()
        .map(|(pc, insn)| line(pc, insn))
        .collect()
}

fn line(pc: usize, insn: &ClassicInsn) -> String {
    let k = insn.k;
    let (op, operand) = match insn.code {
        0x20 => ("ld", format!("[{k}]")),
        0x28 => ("ldh", format!("[{k}]")),
        0x30 => ("ldb", format!("[{k}]")),
        0x40 => ("ld", format!("[x + {k}]")),
        0x48 => ("ldh", format!("[x + {k}]")),
        0x50 => ("ldb", format!("[x + {k}]")),
        0x80 => ("ld", "#pktlen".to_string()),
        0x00 => ("ld", format!("#0x{k:x}")),
        0x01 => ("ldx", format!("#0x{k:x}")),
        0xb1 => ("ldxb", format!("4*([{k}]&0xf)")),
        0x60 => ("ld", format!("M[{k}]")),
        0x61 => ("ldx", format!("M[{k}]")),
        0x02 => ("st", format!("M[{k}]")),
        0x03 => ("stx", format!("M[{k}]")),
        0x05 => ("ja", format!("{}", pc + 1 + k as usize)),
        0x15 | 0x25 | 0x35 | 0x45 => return jump(pc, insn),
        0x54 => ("and", format!("#0x{k:x}")),
        0x44 => ("or", format!("#0x{k:x}")),
        0x64 => ("lsh", format!("#{k}")),
        0x74 => ("rsh", format!("#{k}")),
        0x04 => ("add", format!("#{k}")),
        0x14 => ("sub", format!("#{k}")),
        0x06 => ("ret", format!("#{k}")),
        0x16 => ("ret", "a".to_string()),
        0x07 => ("tax", String::new()),
        0x87 => ("txa", String::new()),
        code => ("unknown", format!("code 0x{code:02x} k 0x{k:x}")),
    };
    format!("({pc:03}) {op:<8} {operand}")
        .trim_end()
        .to_string()
}

fn jump(pc: usize, insn: &ClassicInsn) -> String {
    let op = match insn.code {
        0x15 => "jeq",
        0x25 => "jgt",
        0x35 => "jge",
        _ => "jset",
    };
    let operand = format!("#0x{:x}", insn.k);
    let (jt, jf) = (pc + 1 + insn.jt as usize, pc + 1 + insn.jf as usize);
    format!("({pc:03}) {op:<8} {operand:<16} jt {jt}\tjf {jf}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_disassembles_to_what_tcpdump_printed() {
        let ours = disassemble(&TCP_DST_PORT_80);
        let theirs: Vec<&str> = TCPDUMP_D.lines().collect();
        assert_eq!(ours, theirs);
    }
}
