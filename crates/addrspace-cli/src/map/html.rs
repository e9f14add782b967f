//! The map as one self-contained HTML page: the data embedded as JSON, the drawing, zoom
//! and hover done by the inline script (`page.js`) and style (`page.css`), no network.

use super::model::Map;
use super::svg::{colour, escape, KINDS};

const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// The page.
pub fn html(map: &Map) -> Result<String, String> {
    let json = serde_json::to_string(map).map_err(|e| format!("map data: {e}"))?;
    // Inside <script>, `<` could open `</script>`: JSON allows it escaped.
    let json = json.replace('<', "\\u003c");
    let colours: Vec<String> = KINDS
        .iter()
        .map(|&k| format!("\"{}\":[\"{}\",\"{}\"]", k.key(), colour(k), k.label()))
        .collect();
    let title = escape(&format!("addrspace map: {}", map.source));
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>\n{STYLE}</style>\n</head>\n<body>\n<header><h1>{title}</h1>\
         <div id=\"controls\"><button id=\"zoom-in\" title=\"zoom in\">+</button>\
         <button id=\"zoom-out\" title=\"zoom out\">&minus;</button>\
         <button id=\"zoom-all\" title=\"the whole 2^64 space\">all</button>\
         <span id=\"span\"></span></div><div id=\"legend\"></div></header>\n\
         <main id=\"map\"></main>\n<div id=\"tip\" hidden></div>\n\
         <script type=\"application/json\" id=\"map-data\">{json}</script>\n\
         <script type=\"application/json\" id=\"map-kinds\">{{{}}}</script>\n\
         <script>\n{SCRIPT}</script>\n</body>\n</html>\n",
        colours.join(",")
    ))
}
