//! `addrspace map SOURCE --svg OUT.svg --html OUT.html`: a picture of a machine's address
//! map. The data (`model`) is the flat views as `info mtree -f` sees them plus, for each
//! range, the `lookup` path; `layout` is the log-like scale; `svg` draws a static picture
//! and `html` a self-contained page that zooms from 2^64 down to bytes.
//!
//! This lives in the CLI rather than the library: it is a presentation of data the library
//! already exposes (flat views, lookups), with styling choices an emulator would not want
//! to inherit, and the library never writes files.

mod html;
mod layout;
mod model;
mod svg;

use std::path::PathBuf;

use clap::Args;

use crate::source::SourceArg;

/// `addrspace map`'s arguments.
#[derive(Args)]
pub struct MapArgs {
    #[command(flatten)]
    pub source: SourceArg,
    /// Write the map as an SVG picture.
    #[arg(long, value_name = "OUT.svg")]
    pub svg: Option<PathBuf>,
    /// Write the map as one self-contained HTML page (zoom, hover for the lookup answer).
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
}

/// Writes the files asked for; returns what an import guessed, for stderr.
pub fn run(args: &MapArgs) -> Result<String, String> {
    if args.svg.is_none() && args.html.is_none() {
        return Err("map: say where to draw it: --svg OUT.svg and/or --html OUT.html".into());
    }
    if args.svg.is_some() && args.svg == args.html {
        return Err("map: --svg and --html name the same file".into());
    }
    let (machine, guessed) = args.source.load()?;
    let map = model::Map::of(&machine, &args.source.source.display().to_string());
    let write = |path: &PathBuf, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &args.svg {
        write(path, svg::svg(&map))?;
    }
    if let Some(path) = &args.html {
        write(path, html::html(&map)?)?;
    }
    Ok(guessed)
}
