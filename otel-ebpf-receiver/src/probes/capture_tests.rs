//! Tests of the capture plan (pure parts: offers, order, rendering).

use super::*;

fn all() -> CaptureOffers {
    CaptureOffers {
        fentry: true,
        fentry_refusal: String::new(),
        kprobe: true,
        btf_funcs: vec!["tcp_sendmsg", "tcp_recvmsg"],
        tracepoints: vec!["sock_send_length", "sock_recv_length"],
        tracepoint_errors: vec![],
        recv_args: Some((3, 5)),
    }
}

#[test]
fn tcp_recvmsg_argument_positions_follow_its_prototype() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // Linux ≥ 5.19.
    assert_eq!(
        recv_arg_positions(&v(&["sk", "msg", "len", "flags", "addr_len"])),
        Some((3, 5))
    );
    // Linux < 5.19 (nonblock before flags).
    assert_eq!(
        recv_arg_positions(&v(&["sk", "msg", "len", "nonblock", "flags", "addr_len"])),
        Some((4, 6))
    );
    assert_eq!(recv_arg_positions(&v(&["sk", "msg", "len"])), None);
    assert_eq!(
        recv_arg_positions(&v(&["sk", "flags", "len", "x", "y"])),
        None
    );
}

#[test]
fn auto_prefers_fentry_then_tracepoint_then_kprobe() {
    assert_eq!(
        order(CaptureHooks::Auto),
        [Mechanism::Fentry, Mechanism::Tracepoint, Mechanism::Kprobe]
    );
    assert_eq!(order(CaptureHooks::Kprobe), [Mechanism::Kprobe]);
}

#[test]
fn not_offered_names_the_missing_piece() {
    let p = &DATA_POINTS[1];
    assert_eq!(not_offered(p, Mechanism::Fentry, &all()), None);
    let mut o = all();
    o.kprobe = false;
    o.tracepoints.clear();
    o.tracepoint_errors = vec![(
        "sock_recv_length",
        "raw tracepoint sock_recv_length is not in this kernel's BTF".into(),
    )];
    assert!(
        not_offered(p, Mechanism::Kprobe, &o)
            .unwrap()
            .contains("CONFIG_KPROBES")
    );
    let tp = not_offered(p, Mechanism::Tracepoint, &o).unwrap();
    assert!(
        tp.contains("not in this kernel's BTF") && tp.contains("6.3"),
        "{tp}"
    );
    o.recv_args = None;
    assert!(
        not_offered(p, Mechanism::Fentry, &o)
            .unwrap()
            .contains("tcp_recvmsg")
    );
    // The send point does not depend on tcp_recvmsg's shape.
    assert_eq!(not_offered(&DATA_POINTS[0], Mechanism::Fentry, &o), None);
    o.btf_funcs.clear();
    assert!(
        not_offered(&DATA_POINTS[0], Mechanism::Fentry, &o)
            .unwrap()
            .contains("not in BTF")
    );
}

#[test]
fn sendfile_point_is_optional_and_has_no_tracepoint() {
    let p = &DATA_POINTS[2];
    assert_eq!(p.function, "tcp_sendpage");
    assert!(p.optional.is_some());
    assert!(DATA_POINTS[..2].iter().all(|p| p.optional.is_none()));
    let o = all();
    // tcp_sendpage is gone from Linux 6.5: neither fentry nor kprobe is offered then.
    assert!(
        not_offered(p, Mechanism::Fentry, &o)
            .unwrap()
            .contains("not in BTF")
    );
    assert!(
        not_offered(p, Mechanism::Kprobe, &o)
            .unwrap()
            .contains("not in BTF")
    );
    assert!(
        not_offered(p, Mechanism::Tracepoint, &o)
            .unwrap()
            .contains("no tracepoint")
    );
    let mut o = o;
    o.btf_funcs.push("tcp_sendpage");
    assert_eq!(not_offered(p, Mechanism::Fentry, &o), None);
    assert_eq!(
        hook_name(p, Mechanism::Kprobe),
        "kprobe+kretprobe:tcp_sendpage"
    );
}

#[test]
fn render_shortens_verifier_logs_to_their_tail() {
    let log: String = (0..40).map(|i| format!("insn {i}\n")).collect();
    let plan = [CaptureChoice {
        what: "socket send",
        chosen: Mechanism::Tracepoint,
        hook: "raw_tp:sock_send_length".into(),
        others: vec![format!("fentry: refused: load: verifier said\n{log}")],
    }];
    let text = render(&plan);
    assert!(text.contains("raw_tp:sock_send_length"));
    assert!(text.contains("- fentry: refused: load: verifier said"));
    assert!(text.contains("insn 39") && text.contains("insn 34"));
    assert!(!text.contains("insn 33\n"), "{text}");
}
