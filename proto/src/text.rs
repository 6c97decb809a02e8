//! Text that another organisation wrote and sent over the wire — a peer's abort reason, a
//! refusal a peer's server sent, the coordinator's abort reason at a node, a party's failure or
//! refusal reason at the coordinator — on its way into job reasons, logs and audit logs.
//!
//! Such text is data, not a message to trust: it is cut to [`MAX_PEER_TEXT`] characters and its
//! control characters are escaped, so a peer can neither fill a log with a megabyte of text per
//! job nor forge log lines (a newline) or terminal output (escape sequences).

/// Most characters of peer-supplied text this node keeps.
pub const MAX_PEER_TEXT: usize = 1024;

/// `text`, cut to [`MAX_PEER_TEXT`] characters (saying how many bytes were cut) with control
/// characters escaped (`\n`, `\u{1b}`).
#[must_use]
pub fn peer_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_PEER_TEXT + 32));
    let mut kept_bytes = 0;
    for (count, c) in text.chars().enumerate() {
        if count == MAX_PEER_TEXT {
            out.push_str(&format!(" [{} bytes cut]", text.len() - kept_bytes));
            return out;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        kept_bytes += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_plain_text_is_kept_as_it_is() {
        assert_eq!(
            peer_text("party 2 failed: timeout"),
            "party 2 failed: timeout"
        );
        assert_eq!(peer_text(""), "");
    }

    #[test]
    fn long_text_is_cut_and_says_so() {
        let long = "é".repeat(1 << 20);
        let got = peer_text(&long);
        assert_eq!(got.chars().filter(|&c| c == 'é').count(), MAX_PEER_TEXT);
        assert!(got.ends_with(&format!(" [{} bytes cut]", (1 << 21) - 2 * MAX_PEER_TEXT)));
        assert!(got.len() < 2 * MAX_PEER_TEXT + 32);
    }

    #[test]
    fn control_characters_cannot_forge_lines_or_terminal_output() {
        let got = peer_text("ok\n2026-12-07 INFO job done\u{1b}[2J\r");
        assert!(!got.chars().any(char::is_control), "{got:?}");
        assert_eq!(got, "ok\\n2026-12-07 INFO job done\\u{1b}[2J\\r");
    }
}
