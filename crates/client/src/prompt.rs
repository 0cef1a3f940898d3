//! Passwords the operator types, read as etcdctl reads them.
//!
//! etcdctl asks with `speakeasy.Ask`: the prompt on stdout, one line from stdin (not echoed
//! when stdin is a terminal), then a newline on stdout. [`ask`] does the same, so scripts
//! that pipe passwords in and read the output see etcdctl's bytes (without speakeasy's
//! `stty: 'standard input': Inappropriate ioctl for device` on stderr). etcdctl's
//! `--interactive=false` reads the password with Go's `fmt.Scanf("%s")`: [`stdin_word`].

use std::io::{self, BufRead, IsTerminal, Write};

/// The prompt on stdout, then one line from stdin, hidden when stdin is a terminal.
pub fn ask(prompt: &str) -> io::Result<String> {
    print_stdout(prompt)?;
    let password = if io::stdin().is_terminal() {
        // rpassword reads the controlling terminal (stdin's, here) with echo off; its own
        // newline is discarded so that the one below is the only one, on stdout, as
        // speakeasy prints it.
        let config = rpassword::ConfigBuilder::new().output_discard().build();
        rpassword::read_password_with_config(config)?
    } else {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line)?;
        trim_newline(&line).to_string()
    };
    print_stdout("\n")?;
    Ok(password)
}

/// [`ask`], only when stdin is a terminal (`None` otherwise: a script gets a clear error
/// instead of a password read from its input).
pub fn ask_on_terminal(prompt: &str) -> Option<io::Result<String>> {
    io::stdin().is_terminal().then(|| ask(prompt))
}

/// The first word of stdin's first line, as Go's `fmt.Scanf("%s")` reads it (etcdctl's
/// `--interactive=false`): leading blanks skipped, the word ends at a blank; an empty line
/// or no input is the empty password.
pub fn stdin_word() -> io::Result<String> {
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(first_word(&line).to_string())
}

fn first_word(line: &str) -> &str {
    let line = trim_newline(line).trim_start();
    line.split(char::is_whitespace).next().unwrap_or("")
}

fn trim_newline(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

fn print_stdout(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `fmt.Scanf("%s", &password)` leaves in `password` for each input.
    #[test]
    fn scanf_words() {
        assert_eq!(first_word("secret\n"), "secret");
        assert_eq!(first_word("secret"), "secret");
        assert_eq!(first_word("  a b\n"), "a");
        assert_eq!(first_word("pw\r\n"), "pw");
        assert_eq!(first_word("\n"), "");
        assert_eq!(first_word(""), "");
        assert_eq!(first_word("\tx\ty\n"), "x");
    }

    #[test]
    fn lines_lose_their_end_only() {
        assert_eq!(trim_newline("a b \r\n"), "a b ");
        assert_eq!(trim_newline("a\n\n"), "a\n");
        assert_eq!(trim_newline("a"), "a");
    }
}
