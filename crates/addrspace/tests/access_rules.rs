//! A device model's access rules are checked when its region is created: rules the
//! dispatcher cannot carry out (sizes that are not 1, 2, 4 or 8, a minimum above the maximum)
//! are refused with a typed error instead of making a later guest access panic the host.

use std::sync::Arc;

use addrspace::{
    AccessRules, Endianness, Error, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionOps, SizeRule, SIZE_2_64,
};

/// Reads return all ones; writes are accepted.
struct Ones(AccessRules);

impl RegionOps for Ones {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (u64::MAX, MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
    fn rules(&self) -> AccessRules {
        self.0
    }
}

fn rules(valid: SizeRule, implementation: SizeRule) -> AccessRules {
    AccessRules {
        valid,
        implementation,
        ..AccessRules::default()
    }
}

fn rule(min: u8, max: u8) -> SizeRule {
    SizeRule {
        min,
        max,
        unaligned: true,
    }
}

/// Every guest access shape the dispatcher splits: byte slices of awkward lengths at awkward
/// offsets, and every fixed-size load and store in both byte orders.
fn exercise(mem: &Memory, r: AccessRules) {
    let root = mem.container("root", SIZE_2_64).unwrap();
    let io = mem.io("dev", 0x10000, Arc::new(Ones(r))).unwrap();
    mem.add_subregion(root, 0x10000, io).unwrap();
    let space = mem.address_space("memory", root).unwrap();
    let a = MemTxAttrs::default();
    for len in [1usize, 3, 5, 7, 16, 17, 4096] {
        for at in [0x10000u64, 0x10001, 0x10003, 0x10006] {
            let mut buf = vec![0u8; len];
            let _ = space.read(GuestAddr(at), &mut buf, a);
            let _ = space.write(GuestAddr(at), &buf, a);
        }
    }
    for order in [Endianness::Little, Endianness::Big] {
        for at in [0x10000u64, 0x10001, 0x10004] {
            let _ = space.load::<u8>(GuestAddr(at), order, a);
            let _ = space.load::<u16>(GuestAddr(at), order, a);
            let _ = space.load::<u32>(GuestAddr(at), order, a);
            let _ = space.load::<u64>(GuestAddr(at), order, a);
            let _ = space.store(GuestAddr(at), 0x1234_5678_9abc_def0u64, order, a);
            let _ = space.store(GuestAddr(at), 0x1234_5678u32, order, a);
            let _ = space.store(GuestAddr(at), 0x1234u16, order, a);
            let _ = space.store(GuestAddr(at), 0x12u8, order, a);
        }
    }
}

#[test]
fn rules_the_dispatcher_cannot_carry_out_are_refused_at_creation() {
    let cases = [
        ("valid.max", rules(rule(1, 16), SizeRule::ANY)),
        ("valid.min", rules(rule(3, 8), SizeRule::ANY)),
        ("valid.max", rules(rule(1, 5), SizeRule::ANY)),
        ("valid", rules(rule(8, 4), SizeRule::ANY)),
        ("implementation.min", rules(SizeRule::ANY, rule(16, 16))),
        ("implementation.max", rules(SizeRule::ANY, rule(1, 255))),
        ("implementation.min", rules(SizeRule::ANY, rule(3, 0))),
        ("implementation", rules(SizeRule::ANY, rule(4, 2))),
    ];
    for (field, r) in cases {
        let mem = Memory::new();
        let err = match mem.io("bad-dev", 0x1000, Arc::new(Ones(r))) {
            Err(e) => e,
            Ok(_) => {
                // Accepted: show what a guest can then do to the host.
                exercise(&Memory::new(), r);
                panic!("io region with {r:?} was accepted (and survived the accesses)");
            }
        };
        assert!(
            matches!(&err, Error::InvalidAccessRules { name, .. } if name == "bad-dev"),
            "{r:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("bad-dev") && msg.contains(field), "{r:?}: message `{msg}`");
        let err = mem
            .rom_device("bad-flash", 0x1000, Arc::new(Ones(r)))
            .expect_err(&format!("rom device with {r:?} was accepted"));
        assert!(matches!(err, Error::InvalidAccessRules { .. }), "{err:?}");
        assert!(mem.regions().is_empty(), "nothing was created for {r:?}");
    }
}

#[test]
fn every_valid_rule_set_survives_every_access_shape() {
    // 0 means "undeclared"; all combinations the check accepts must dispatch without a panic.
    let sizes = [0u8, 1, 2, 4, 8];
    for vmin in sizes {
        for vmax in sizes {
            for imin in sizes {
                for imax in sizes {
                    let r = rules(rule(vmin, vmax), rule(imin, imax));
                    let mem = Memory::new();
                    let ok = mem.io("probe-dev", 0x1000, Arc::new(Ones(r)));
                    let ordered = |lo: u8, hi: u8| hi == 0 || lo <= hi;
                    assert_eq!(ok.is_ok(), ordered(vmin, vmax) && ordered(imin, imax), "{r:?}: {ok:?}");
                    if ok.is_ok() {
                        exercise(&Memory::new(), r);
                    }
                }
            }
        }
    }
}
