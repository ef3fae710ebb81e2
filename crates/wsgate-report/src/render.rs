//! Rows for people: a terminal table and a Markdown table.

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::Row;

const HEADER: [&str; 8] = [
    "case", "tier", "ingress", "scheme", "client", "expected", "observed", "ok",
];

/// The rows as a table for a terminal.
pub fn table(rows: &[Row]) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(HEADER);
    for r in rows {
        t.add_row([
            r.case.clone(),
            r.tier.clone(),
            r.ingress.clone(),
            r.scheme_text(),
            r.client.clone(),
            r.expected_text(),
            r.observed_text(),
            if r.pass() { "yes" } else { "NO" }.to_owned(),
        ]);
    }
    t.to_string()
}

/// The rows as a Markdown table (for `$GITHUB_STEP_SUMMARY` and `target/`).
pub fn markdown(rows: &[Row]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}\n",
        HEADER.join(" | "),
        "---|".repeat(HEADER.len())
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            esc(&r.case),
            esc(&r.tier),
            esc(&r.ingress),
            r.scheme_text(),
            esc(&r.client),
            esc(&r.expected_text()),
            esc(&r.observed_text()),
            if r.pass() { "yes" } else { "**NO**" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_renderings_show_the_typed_outcome() {
        let row = crate::row::sample();
        assert!(table(std::slice::from_ref(&row)).contains("survived 75000 ms"));
        assert!(markdown(&[row]).contains("| idle | local | ws | ws | idle 75 s |"));
    }
}
