//! Limits on what a board file or a caller can ask for: a CPU count, a CPU index or an
//! address-space index beyond the documented limits is a typed error naming the limit (not an
//! allocation abort, a "capacity overflow" panic or a CPU index that wraps to 0), and a board
//! file that is not UTF-8 is an error naming the line.

use addrspace::board::{self, load_str};
use addrspace::cpu::{Cluster, Cpu, CpuModel, CpuSpaceSpec, CpuView};
use addrspace::limits::{MAX_CPUS, MAX_CPU_ID, MAX_CPU_SPACES};
use addrspace::{Error, LoadError, Memory, SIZE_2_64};

/// A board with one cluster; `cluster` is spliced into its `[[cluster]]` table (line 7 on).
fn board(cluster: &str) -> String {
    format!(
        "[[region]]\nname = \"system\"\ntype = \"container\"\nsize = \"2^64\"\n\n\
         [[cluster]]\n{cluster}\n"
    )
}

/// Loads `text`, expecting a board error at `line` whose message has every one of `needles`.
fn refused_at(text: &str, line: usize, needles: &[&str]) -> String {
    match load_str(text, "limits.toml") {
        Ok(_) => panic!("loaded, but should not have:\n{text}"),
        Err(LoadError::Board { line: got, msg, .. }) => {
            assert_eq!(got, line, "{msg}\n{text}");
            for n in needles {
                assert!(msg.contains(n), "`{n}` missing from: {msg}");
            }
            msg
        }
        Err(e) => panic!("expected a board error, got {e:?}"),
    }
}

#[test]
fn max_cpus_beyond_the_limit_is_refused() {
    let text = board(
        "name = \"cpus\"\nmax-cpus = 1000000000000\ncpus = 1\n\
         spaces = [{ index = 0, prefix = \"cpu-memory\", root = \"system\" }]",
    );
    refused_at(&text, 8, &["max-cpus", "1000000000000", &MAX_CPUS.to_string()]);
    // At the limit it loads.
    let text = text.replace("1000000000000", &MAX_CPUS.to_string());
    let m = load_str(&text, "limits.toml").unwrap();
    assert_eq!(m.clusters[0].max_cpus(), MAX_CPUS);
}

#[test]
fn cluster_new_refuses_too_many_slots() {
    let mem = Memory::new();
    let err = Cluster::new("cpus", &mem, CpuModel::default(), 0, 1_000_000_000_000).unwrap_err();
    assert!(
        matches!(err, Error::Limit { limit, .. } if limit == MAX_CPUS as u64),
        "{err:?}"
    );
    assert!(err.to_string().contains(&MAX_CPUS.to_string()), "{err}");
}

#[test]
fn address_space_index_beyond_the_limit_is_refused() {
    let text = board(
        "name = \"cpus\"\nmax-cpus = 2\n\
         spaces = [{ index = 9223372036854775806, prefix = \"cpu-memory\", root = \"system\" }]",
    );
    refused_at(&text, 9, &["9223372036854775806", &(MAX_CPU_SPACES - 1).to_string()]);
}

#[test]
fn realize_refuses_an_address_space_index_beyond_the_limit() {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    for index in [MAX_CPU_SPACES, usize::MAX / 2, usize::MAX] {
        let model = CpuModel {
            spaces: vec![CpuSpaceSpec {
                index,
                prefix: "cpu-memory".into(),
                view: CpuView::Root(system),
            }],
            tlb: false,
        };
        let err = Cpu::realize(&mem, 0, &model).unwrap_err();
        assert!(
            matches!(err, Error::Limit { limit, .. } if limit == MAX_CPU_SPACES as u64 - 1),
            "{index}: {err:?}"
        );
    }
    assert_eq!(mem.stats().address_spaces, 0, "nothing left behind");
}

#[test]
fn first_index_that_would_wrap_is_refused() {
    // Two clusters: the second would start at 4294967295 + 2, wrapped to 1... or 0.
    let text = board(
        "name = \"a\"\nmax-cpus = 1\nfirst-index = 4294967295\n\
         spaces = [{ index = 0, prefix = \"cpu-memory\", root = \"system\" }]\n\n\
         [[cluster]]\nname = \"b\"\nmax-cpus = 1\n\
         spaces = [{ index = 0, prefix = \"cpu-memory\", root = \"system\" }]",
    );
    refused_at(&text, 9, &["4294967295", &(MAX_CPU_ID - 1).to_string()]);
    // The last index allowed is MAX_CPU_ID - 1.
    let ok = text.replace("4294967295", &(MAX_CPU_ID - 2).to_string()).replace(
        "[[cluster]]\nname = \"b\"",
        "[[cluster]]\nname = \"b\"\nfirst-index = 1",
    );
    let m = load_str(&ok, "limits.toml").unwrap();
    let names: Vec<_> = m.clusters.iter().flat_map(|c| c.cpus()).map(|c| c.index()).collect();
    assert_eq!(names, [MAX_CPU_ID - 2, 1]);
    let last = text.replace("4294967295", &(MAX_CPU_ID - 1).to_string());
    refused_at(&last, 14, &["cluster `b`", "4096", &(MAX_CPU_ID - 1).to_string()]);
}

#[test]
fn clusters_with_overlapping_cpu_indices_are_refused() {
    let text = board(
        "name = \"a\"\nmax-cpus = 4\n\
         spaces = [{ index = 0, prefix = \"cpu-memory\", root = \"system\" }]\n\n\
         [[cluster]]\nname = \"b\"\nmax-cpus = 2\nfirst-index = 2\n\
         spaces = [{ index = 0, prefix = \"cpu-memory\", root = \"system\" }]",
    );
    refused_at(&text, 14, &["2..=3", "cluster `a`"]);
}

#[test]
fn cluster_new_refuses_indices_beyond_the_limit() {
    let mem = Memory::new();
    for (first, max) in [(u32::MAX, 1), (MAX_CPU_ID, 1), (MAX_CPU_ID - 1, 2)] {
        let err = Cluster::new("cpus", &mem, CpuModel::default(), first, max).unwrap_err();
        assert!(
            matches!(err, Error::Limit { limit, .. } if limit == u64::from(MAX_CPU_ID) - 1),
            "{first} + {max}: {err:?}"
        );
    }
    assert!(Cluster::new("cpus", &mem, CpuModel::default(), MAX_CPU_ID - 1, 1).is_ok());
}

#[test]
fn non_utf8_board_file_names_the_line() {
    let path = std::env::temp_dir().join(format!("addrspace-limits-{}.toml", std::process::id()));
    let mut bytes = b"[[region]]\nname = \"system\"\ntype = \"container\"\nsize = \"2^64\"\n# caf".to_vec();
    bytes.extend_from_slice(&[0xe9, b'\n']);
    std::fs::write(&path, &bytes).unwrap();
    let err = board::load_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    match &err {
        LoadError::Board { line, column, msg, .. } => {
            assert_eq!((*line, *column), (5, 6), "{err}");
            assert!(msg.contains("UTF-8"), "{msg}");
        }
        other => panic!("expected a board error naming the line, got {other}"),
    }
}
