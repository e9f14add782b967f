//! The scale of the picture: a log-like axis on which every piece between two boundaries
//! gets a height that grows with the log of its size, with a minimum, so that a 4 KiB
//! device next to 4 GiB of RAM stays visible and 2^64 bytes still fit on a page. All
//! columns share one axis built from the union of their boundaries, so one address is at
//! one height everywhere.
//!
//! Heights are integers in tenths of a pixel and the logarithm is the piecewise-linear
//! one (exact at powers of two), so the output is the same on every machine. The HTML
//! page's script applies the same rule to the window it zooms to.

/// Height of a one-byte piece, in tenths of a pixel (room for one line of text).
pub const MIN_HEIGHT: u64 = 140;
/// Height added per doubling of the size, in tenths of a pixel.
pub const PER_DOUBLING: u64 = 25;

/// The height of a piece of `size` bytes (1 ..= 2^64), in tenths of a pixel:
/// `MIN_HEIGHT + PER_DOUBLING * log2(size)`, the log interpolated linearly between powers
/// of two.
pub fn height(size: u128) -> u64 {
    let size = size.max(1);
    let floor = 127 - size.leading_zeros(); // floor(log2(size))
    let rest = size - (1u128 << floor); // < 2^floor
    let frac = (rest * u128::from(PER_DOUBLING)) >> floor; // < PER_DOUBLING
    MIN_HEIGHT + PER_DOUBLING * u64::from(floor) + frac as u64
}

/// The shared axis: sorted boundaries and the height (tenths of a pixel) of each.
#[derive(Debug)]
pub struct Axis {
    bounds: Vec<u128>,
    ys: Vec<u64>,
}

impl Axis {
    /// The axis through `bounds` (sorted, deduplicated, from 0 to 2^64).
    pub fn new(bounds: Vec<u128>) -> Axis {
        let mut ys = Vec::with_capacity(bounds.len());
        let mut y = 0;
        for (i, &b) in bounds.iter().enumerate() {
            if i > 0 {
                y += height(b - bounds[i - 1]);
            }
            ys.push(y);
        }
        Axis { bounds, ys }
    }

    /// The boundaries with their heights, top to bottom.
    pub fn marks(&self) -> impl Iterator<Item = (u128, u64)> + '_ {
        self.bounds.iter().copied().zip(self.ys.iter().copied())
    }

    /// The height of boundary `addr` (one of the axis's boundaries; others are placed at
    /// the next boundary above them, which a column's own boundaries never need).
    pub fn y(&self, addr: u128) -> u64 {
        let i = self.bounds.partition_point(|&b| b < addr);
        self.ys[i.min(self.ys.len() - 1)]
    }

    /// The total height.
    pub fn total(&self) -> u64 {
        self.ys.last().copied().unwrap_or(0)
    }
}

/// An address in QEMU's style: 16 hex digits; 2^64 (the end of the space) as its last
/// address, `ffffffffffffffff`.
pub fn hex16(addr: u128) -> String {
    format!("{:016x}", addr.min(u128::from(u64::MAX)))
}

/// A size for people: `4 KiB`, `1.5 GiB`, `16 EiB`, `7 B`; two decimals at most, `~`
/// before a rounded one.
pub fn size_text(size: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && size >= 1u128 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1u128 << (10 * unit);
    let hundredths = (size * 100 + scale / 2) / scale;
    let (whole, frac) = (hundredths / 100, hundredths % 100);
    let about = if hundredths * scale == size * 100 { "" } else { "~" };
    match frac {
        0 => format!("{about}{whole} {}", UNITS[unit]),
        f if f % 10 == 0 => format!("{about}{whole}.{} {}", f / 10, UNITS[unit]),
        f => format!("{about}{whole}.{f:02} {}", UNITS[unit]),
    }
}

/// Tenths of a pixel as an SVG number (`123.4`, `12`).
pub fn px(tenths: u64) -> String {
    match tenths % 10 {
        0 => format!("{}", tenths / 10),
        d => format!("{}.{d}", tenths / 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_grow_with_the_log_and_keep_a_minimum() {
        assert_eq!(height(1), MIN_HEIGHT);
        assert_eq!(height(4096), MIN_HEIGHT + 12 * PER_DOUBLING);
        assert_eq!(height(1 << 64), MIN_HEIGHT + 64 * PER_DOUBLING);
        // Between powers of two the log is interpolated, and never decreases.
        assert!(height(6144) > height(4096) && height(6144) < height(8192));
        let mut last = 0;
        for s in (1..5000u128).chain([(1 << 63) + 1, u128::from(u64::MAX), 1 << 64]) {
            assert!(height(s) >= last, "{s}");
            last = height(s);
        }
    }

    #[test]
    fn an_axis_places_each_boundary_below_the_last() {
        let a = Axis::new(vec![0, 0x1000, 0x1_0000_0000, 1 << 64]);
        assert_eq!(a.y(0), 0);
        assert_eq!(a.y(0x1000), height(0x1000));
        assert_eq!(a.y(0x1_0000_0000), height(0x1000) + height(0x1_0000_0000 - 0x1000));
        assert_eq!(a.total(), a.y(1 << 64));
    }

    #[test]
    fn sizes_and_addresses_print_as_people_read_them() {
        assert_eq!(size_text(4096), "4 KiB");
        assert_eq!(size_text(0x6000_0000), "1.5 GiB");
        assert_eq!(size_text(1 << 64), "16 EiB");
        assert_eq!(size_text(7), "7 B");
        assert_eq!(size_text(0x1_4000), "80 KiB");
        assert_eq!(size_text(1000), "1000 B");
        assert_eq!(size_text(0x3ff), "1023 B");
        assert_eq!(size_text(0x1_2000), "72 KiB");
        assert_eq!(size_text(1025), "~1 KiB");
        assert_eq!(size_text((1 << 64) - (1 << 32)), "~16 EiB");
        assert_eq!(size_text(0xdf80_0000), "~3.49 GiB");
        assert_eq!(hex16(0xc0000), "00000000000c0000");
        assert_eq!(hex16(1 << 64), "ffffffffffffffff");
        assert_eq!(px(1234), "123.4");
        assert_eq!(px(120), "12");
    }
}
