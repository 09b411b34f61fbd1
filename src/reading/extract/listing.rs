//! CSV and plain-text listings of crt.sh ids.
//!
//! Bulk reporters (key-compromise notifiers, researchers) attach a spreadsheet or a list of
//! crt.sh ids. Fingerprints and links in them are found by the ordinary text scan; what this
//! module adds are *bare numbers*, which only mean "crt.sh id" in these two shapes:
//! a CSV column whose header says so, or a list where a line is nothing but a number.

/// Header names (lowercase, alphanumerics only) of a crt.sh id column.
const ID_COLUMNS: [&str; 3] = ["crtshid", "crtsh", "id"];

/// A bare number must have this many digits to count in a plain list (shorter ones are list
/// numbering, counts, years...).
const MIN_PLAIN_DIGITS: usize = 4;

/// crt.sh ids named by a listing, with the byte offset of their line.
///
/// `is_csv` says the attachment declared itself CSV: then a first line that is not a recognised
/// header is still a header, and bare numbers under it (serials, counts) are not ids.
pub(crate) fn crtsh_ids(text: &str, is_csv: bool) -> Vec<(usize, u64)> {
    let mut lines = offset_lines(text).filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else {
        return Vec::new();
    };
    if let Some((delimiter, column)) = id_column(first) {
        return lines
            .filter_map(|(pos, line)| {
                let cell = split_fields(line, delimiter).into_iter().nth(column)?;
                Some((pos, plain_id(cell, 1)?))
            })
            .collect();
    }
    if is_csv && plain_id(first, MIN_PLAIN_DIGITS).is_none() {
        return Vec::new();
    }
    offset_lines(text)
        .filter_map(|(pos, line)| Some((pos, plain_id(line, MIN_PLAIN_DIGITS)?)))
        .collect()
}

/// Lines with their byte offsets.
fn offset_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_inclusive('\n').scan(0, |pos, line| {
        let start = *pos;
        *pos += line.len();
        Some((start, line.trim_end_matches(['\r', '\n'])))
    })
}

/// The delimiter and index of a crt.sh id column, if `header` is a CSV header with one.
fn id_column(header: &str) -> Option<(char, usize)> {
    [',', ';', '\t'].into_iter().find_map(|delimiter| {
        split_fields(header, delimiter)
            .iter()
            .position(|cell| ID_COLUMNS.contains(&normalize_header(cell).as_str()))
            .map(|column| (delimiter, column))
    })
}

fn normalize_header(cell: &str) -> String {
    cell.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A cell or line that is nothing but a number of at least `min_digits` digits.
fn plain_id(cell: &str, min_digits: usize) -> Option<u64> {
    let cell = cell.trim().trim_matches('"').trim();
    if cell.len() < min_digits {
        return None;
    }
    super::crtsh::parse_id(cell)
}

/// Split one CSV line, honouring double quotes (a quoted field may contain the delimiter).
fn split_fields(line: &str, delimiter: char) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == delimiter && !quoted {
            fields.push(&line[start..i]);
            start = i + c.len_utf8();
        }
    }
    fields.push(&line[start..]);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str, is_csv: bool) -> Vec<u64> {
        crtsh_ids(text, is_csv)
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }

    #[test]
    fn csv_id_column() {
        let csv =
            "\"Common Name\",\"crt.sh ID\",serial\r\n\"a, b\",1777593900,123456\r\nx,12,99999\r\n";
        assert_eq!(ids(csv, true), vec![1_777_593_900, 12]);
        assert_eq!(ids("name;crtsh_id\nfoo;4242\n", true), vec![4242]);
        assert_eq!(ids("ID\n5\n", true), vec![5]);
    }

    #[test]
    fn csv_without_id_column_names_no_numbers() {
        assert!(ids("serial,name\n12345678,foo\n", true).is_empty());
        assert!(ids("serial\n12345678\n", true).is_empty());
    }

    #[test]
    fn plain_list() {
        let list = "Revoke these please:\n1777593900\n  1777593901\r\n123\n2024 was a year\n";
        assert_eq!(ids(list, false), vec![1_777_593_900, 1_777_593_901]);
        assert_eq!(
            ids("1777593900\n1777593901\n", true),
            vec![1_777_593_900, 1_777_593_901]
        );
    }
}
