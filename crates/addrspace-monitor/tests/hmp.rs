//! HMP commands against the fake machine: QEMU 10.0.2's text formats (as captured in the
//! repository's `tests/fixtures/qmp/hmp-*.txt`), errors, and the `*` of the current CPU.

mod support;

use addrspace_monitor::{run_line, Events, HmpOutput};
use serde_json::{json, Map};
use support::{Fake, CPU_TYPE, SOCKETS};

fn text(fake: &Fake, line: &str) -> String {
    run_line(fake, line, None).text
}

fn plug(fake: &Fake, line: &str) {
    assert_eq!(text(fake, line), "", "{line}");
}

#[test]
fn info_cpus_marks_the_current_cpu() {
    let fake = Fake::new(Events::new());
    plug(&fake, &format!("device_add {CPU_TYPE},socket-id=2,id=c2"));
    let threads: Vec<i64> = fake.lock().cpus.values().map(|c| c.thread).collect();
    let expected = |current: usize| -> String {
        let sockets: Vec<i64> = fake.lock().cpus.keys().copied().collect();
        sockets
            .iter()
            .zip(&threads)
            .enumerate()
            .map(|(i, (socket, thread))| {
                let mark = if i == current { '*' } else { ' ' };
                format!("{mark} CPU #{socket}: thread_id={thread}\n")
            })
            .collect()
    };
    assert_eq!(text(&fake, "info cpus"), expected(0));
    assert_eq!(run_line(&*fake, "info cpus", Some(2)).text, expected(1));
}

#[test]
fn info_hotpluggable_cpus_prints_every_slot_in_qmp_order() {
    let fake = Fake::new(Events::new());
    plug(&fake, &format!("device_add {CPU_TYPE},socket-id=1,id=cpu1"));
    let out = text(&fake, "info hotpluggable-cpus");
    let mut expected = String::from("Hotpluggable CPUs:\n");
    for socket in (0..SOCKETS).rev() {
        expected.push_str(&format!("  type: \"{CPU_TYPE}\"\n  vcpus_count: \"1\"\n"));
        if let Some(cpu) = fake.lock().cpus.get(&socket) {
            expected.push_str(&format!("  qom_path: \"{}\"\n", cpu.path));
        }
        expected.push_str(&format!(
            "  CPUInstance Properties:\n    socket-id: \"{socket}\"\n    core-id: \"0\"\n    thread-id: \"0\"\n"
        ));
    }
    assert_eq!(out, expected);
    assert!(out.contains("  qom_path: \"/machine/peripheral/cpu1\"\n"));
}

#[test]
fn status_version_stop_cont() {
    let fake = Fake::new(Events::new());
    assert_eq!(text(&fake, "info status"), "VM status: running\n");
    assert_eq!(text(&fake, "stop"), "");
    assert_eq!(text(&fake, "info status"), "VM status: paused\n");
    assert_eq!(text(&fake, "c"), "");
    assert!(fake.lock().running);
    assert_eq!(
        text(&fake, "info version"),
        format!("10.0.2addrspace {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn device_add_passes_strings_and_device_del_reports_errors() {
    let fake = Fake::new(Events::new());
    plug(
        &fake,
        &format!("device_add {CPU_TYPE},socket-id=3,core-id=0,thread-id=0,id=h3"),
    );
    let log = fake.lock().log.last().cloned().unwrap_or_default();
    let mut props = Map::new();
    for (k, v) in [("socket-id", "3"), ("core-id", "0"), ("thread-id", "0")] {
        props.insert(k.into(), json!(v));
    }
    let expected = addrspace_monitor::Command::DeviceAdd {
        driver: CPU_TYPE.into(),
        id: Some("h3".into()),
        props,
        keyval: true,
    };
    assert_eq!(log, format!("{expected:?}"));
    assert_eq!(
        text(&fake, &format!("device_add {CPU_TYPE},socket-id=3")),
        "Error: CPU[3] with APIC ID 3 exists\n"
    );
    assert_eq!(text(&fake, "device_add"), "Error: Parameter 'driver' is missing\n");
    assert_eq!(text(&fake, "device_del h3"), "");
    assert!(!fake.lock().cpus.contains_key(&3));
    assert_eq!(text(&fake, "device_del nosuch"), "Error: Device 'nosuch' not found\n");
    assert_eq!(text(&fake, "device_del"), "device_del: string expected\n");
}

#[test]
fn mtree_options_reach_the_backend() {
    let fake = Fake::new(Events::new());
    assert_eq!(text(&fake, "info mtree"), fake.mtree_text(false, false, false));
    assert_eq!(text(&fake, "info mtree -f -d -D"), fake.mtree_text(true, true, true));
    assert_eq!(text(&fake, "info mtree -d -f"), "mtree: unsupported option -f\n");
    // QEMU accepts `-d` without `-f` (and prints the flat views: the backend's business).
    assert_eq!(text(&fake, "info mtree -d"), fake.mtree_text(false, true, false));
    assert_eq!(
        text(&fake, "info mtree -o -D"),
        fake.mtree_owners(false, false, true, true)
    );
    assert_eq!(
        text(&fake, "info mtree -f -d -o -D"),
        fake.mtree_owners(true, true, true, true)
    );
}

#[test]
fn unknown_commands_and_quit() {
    let fake = Fake::new(Events::new());
    assert_eq!(text(&fake, "nosuch"), "unknown command: 'nosuch'\n");
    assert_eq!(text(&fake, "info nosuch"), "unknown command: 'info nosuch'\n");
    assert_eq!(text(&fake, ""), "");
    assert!(!fake.lock().quit);
    assert_eq!(
        run_line(&*fake, "quit", None),
        HmpOutput {
            text: String::new(),
            quit: true
        }
    );
    assert!(fake.lock().quit);
    let help = text(&fake, "help");
    for name in [
        "cont|c",
        "device_add",
        "device_del",
        "help|?",
        "info",
        "quit|q",
        "stop|s",
    ] {
        assert!(help.lines().any(|l| l.starts_with(&format!("{name} "))), "{name}");
    }
}
