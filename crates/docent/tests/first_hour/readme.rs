//! The README as a script: its fenced code blocks, each shell block split into its top-level
//! commands, and the one bash script that runs them all in order (see
//! `every_readme_block_runs_in_order_against_a_fresh_server` for the conventions).

use std::path::Path;

/// The marker, on the line before a fence, of a block the README test does not run:
/// `<!-- readme-test: skip (why) -->`.
const SKIP_MARKER: &str = "<!-- readme-test: skip";

/// A fenced code block of the README.
#[derive(Debug)]
pub struct Block {
    /// The info string's first word (`sh`, `toml`, `python`, ...).
    pub lang: String,
    /// The README line (1-based) of its first line of content.
    pub line: usize,
    /// Its content.
    pub text: String,
    /// Why it is not run, when the line before its fence is a skip marker.
    pub skip: Option<String>,
}

impl Block {
    /// A shell block (`sh`, `bash` or `shell`).
    pub fn is_shell(&self) -> bool {
        matches!(self.lang.as_str(), "sh" | "bash" | "shell")
    }
}

pub fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The README's fenced code blocks, in order.
pub fn readme_blocks() -> Vec<Block> {
    blocks(&repo_file("README.md"))
}

/// The fenced code blocks of a Markdown text, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = "";
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            Some(_) if trimmed.starts_with("```") => out.extend(open.take()),
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let skip = previous.trim().strip_prefix(SKIP_MARKER).map(|rest| {
                        let reason = rest.trim().trim_end_matches("-->").trim();
                        let reason = reason.trim_start_matches('(').trim_end_matches(')').trim();
                        assert!(
                            !reason.is_empty(),
                            "README.md:{}: a skipped block says why: {SKIP_MARKER} (why) -->",
                            index + 1
                        );
                        reason.to_owned()
                    });
                    open = Some(Block {
                        lang: info.split_whitespace().next().unwrap_or("").to_owned(),
                        line: index + 2,
                        text: String::new(),
                        skip,
                    });
                }
                if !trimmed.is_empty() {
                    previous = line;
                }
            }
        }
    }
    assert!(open.is_none(), "README.md ends inside a code block");
    out
}

/// A top-level command of a shell block.
#[derive(Debug, PartialEq)]
pub struct ShellCommand {
    /// Index of its first line in the block.
    pub line: usize,
    /// Its text, comments left out.
    pub text: String,
}

impl ShellCommand {
    /// Whether it shows an error (`jq .error.code`): its requests are meant to fail.
    pub fn shows_an_error(&self) -> bool {
        self.text.match_indices(".error").any(|(at, m)| {
            !self.text[at + m.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    }

    /// The variable it sets from a command substitution (`NAME=$(…)`), if that is what it does.
    pub fn assigned_from_output(&self) -> Option<&str> {
        let (name, rest) = self.text.trim_start().split_once("=$(")?;
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then_some(rest)
            .map(|_| name)
    }
}

/// Where the splitter is: inside quotes or a `(…)`, or in plain shell syntax.
enum Nest {
    Single,
    Double,
    Backtick,
    /// `$(…)` (inside a word: the word and whether it stood where a command starts) or `(…)`.
    Paren {
        outer: Option<(String, bool)>,
    },
}

/// Words that open (`if`, loops, `case`, `{`) and close a compound command, and words after
/// which a command starts.
const OPENERS: &[&str] = &["if", "for", "while", "until", "case", "select", "{"];
const CLOSERS: &[&str] = &["fi", "done", "esac", "}"];
const BEFORE_COMMAND: &[&str] = &[
    "if", "then", "else", "elif", "do", "while", "until", "!", "{", "time",
];

/// Splits a shell block into its top-level commands. A command ends at a newline outside
/// quotes, `$(…)` and `(…)`, outside `if`/`for`/`while`/`until`/`case`/`{…}` bodies, and not
/// after a `\`, `|`, `&&` or `||`; here-documents belong to their command. Comments are left
/// out, and a line with nothing else is no command.
pub fn shell_commands(block: &str) -> Vec<ShellCommand> {
    let chars: Vec<char> = block.chars().collect();
    let mut out = Vec::new();
    let mut nest: Vec<Nest> = Vec::new();
    let mut text = String::new();
    let mut first_line = 0;
    let mut line = 0;
    let mut word = String::new();
    let mut command_position = true;
    let mut depth = 0i32;
    let mut heredocs: Vec<(String, bool)> = Vec::new();
    let mut i = 0;

    // Ends the current word: compound keywords count only where a command starts.
    let end_word = |word: &mut String, command_position: &mut bool, depth: &mut i32| {
        if word.is_empty() {
            return;
        }
        if *command_position {
            if OPENERS.contains(&word.as_str()) {
                *depth += 1;
            } else if CLOSERS.contains(&word.as_str()) {
                *depth -= 1;
            }
        }
        let assignment = word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        *command_position = BEFORE_COMMAND.contains(&word.as_str())
            || CLOSERS.contains(&word.as_str())
            || (*command_position && assignment);
        word.clear();
    };

    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let plain = matches!(nest.last(), None | Some(Nest::Paren { .. }));
        if !matches!(nest.last(), Some(Nest::Single)) {
            if c == '$' && next == Some('(') {
                text.push_str("$(");
                nest.push(Nest::Paren {
                    outer: Some((std::mem::take(&mut word), command_position)),
                });
                command_position = true;
                i += 2;
                continue;
            }
            if let ('\\', Some(n)) = (c, next) {
                if plain && n == '\n' {
                    // A line continuation: the command goes on.
                    end_word(&mut word, &mut command_position, &mut depth);
                } else {
                    word.push(c);
                    word.push(n);
                }
                text.push(c);
                text.push(n);
                line += usize::from(n == '\n');
                i += 2;
                continue;
            }
        }
        match nest.last() {
            Some(Nest::Single) => {
                if c == '\'' {
                    nest.pop();
                }
                word.push(c);
            }
            Some(Nest::Double) | Some(Nest::Backtick) => {
                let closing = if matches!(nest.last(), Some(Nest::Double)) {
                    '"'
                } else {
                    '`'
                };
                word.push(c);
                if c == closing {
                    nest.pop();
                }
            }
            None | Some(Nest::Paren { .. }) => match c {
                '#' if word.is_empty() => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                    continue;
                }
                '\'' => {
                    nest.push(Nest::Single);
                    word.push(c);
                }
                '"' => {
                    nest.push(Nest::Double);
                    word.push(c);
                }
                '`' => {
                    nest.push(Nest::Backtick);
                    word.push(c);
                }
                '(' => {
                    end_word(&mut word, &mut command_position, &mut depth);
                    nest.push(Nest::Paren { outer: None });
                    command_position = true;
                }
                ')' => {
                    end_word(&mut word, &mut command_position, &mut depth);
                    match nest.pop() {
                        Some(Nest::Paren {
                            outer: Some((outer, position)),
                        }) => {
                            word = outer + "$()";
                            command_position = position;
                        }
                        // A `case` pattern's `)` or the end of a `(…)`: a command may follow.
                        _ => command_position = true,
                    }
                }
                '<' if next == Some('<') && chars.get(i + 2) != Some(&'<') => {
                    end_word(&mut word, &mut command_position, &mut depth);
                    let strip_tabs = chars.get(i + 2) == Some(&'-');
                    let mut j = i + 2 + usize::from(strip_tabs);
                    while chars.get(j).is_some_and(|c| *c == ' ' || *c == '\t') {
                        j += 1;
                    }
                    let mut delimiter = String::new();
                    while let Some(&d) = chars.get(j) {
                        if d.is_whitespace() || ";|&<>()".contains(d) {
                            break;
                        }
                        if d != '\'' && d != '"' && d != '\\' {
                            delimiter.push(d);
                        }
                        j += 1;
                    }
                    heredocs.push((delimiter, strip_tabs));
                    text.extend(&chars[i..j]);
                    command_position = false;
                    i = j;
                    continue;
                }
                '\n' => {
                    end_word(&mut word, &mut command_position, &mut depth);
                    // Here-documents started on this line follow it.
                    let mut body = String::new();
                    for (delimiter, strip_tabs) in heredocs.drain(..) {
                        loop {
                            let start = i + 1;
                            let end = (start..chars.len())
                                .find(|&k| chars[k] == '\n')
                                .unwrap_or(chars.len());
                            if start >= chars.len() {
                                break;
                            }
                            let body_line: String = chars[start..end].iter().collect();
                            body.push('\n');
                            body.push_str(&body_line);
                            line += 1;
                            i = end;
                            let candidate = if strip_tabs {
                                body_line.trim_start_matches('\t')
                            } else {
                                body_line.as_str()
                            };
                            if candidate == delimiter {
                                break;
                            }
                        }
                    }
                    text.push_str(&body);
                    let continued = {
                        let t = text.trim_end();
                        t.ends_with('|') || t.ends_with("&&")
                    };
                    if nest.is_empty() && depth <= 0 && !continued {
                        if !text.trim().is_empty() {
                            out.push(ShellCommand {
                                line: first_line,
                                text: std::mem::take(&mut text),
                            });
                        }
                        text.clear();
                        depth = 0;
                        first_line = line + 1;
                    } else {
                        text.push('\n');
                    }
                    command_position = true;
                    line += 1;
                    i += 1;
                    continue;
                }
                ';' | '|' | '&' => {
                    end_word(&mut word, &mut command_position, &mut depth);
                    command_position = true;
                }
                '<' | '>' => {
                    end_word(&mut word, &mut command_position, &mut depth);
                    command_position = false;
                }
                c if c.is_whitespace() => end_word(&mut word, &mut command_position, &mut depth),
                _ => word.push(c),
            },
        }
        if c == '\n' {
            line += 1;
        }
        text.push(c);
        i += 1;
    }
    end_word(&mut word, &mut command_position, &mut depth);
    if !text.trim().is_empty() {
        out.push(ShellCommand {
            line: first_line,
            text,
        });
    }
    out
}

/// What the README's commands need from the test: the server's address and setup token, and a
/// Python with the `openai` package for the Python blocks.
pub struct Substitutions<'a> {
    /// `host:port` of the server.
    pub address: &'a str,
    /// The setup token it printed.
    pub setup_token: &'a str,
    /// Whether `$README_PYTHON` can run the Python blocks.
    pub python: bool,
}

/// The placeholder of the setup token in the quick tour.
pub const SETUP_TOKEN_PLACEHOLDER: &str = "paste-the-printed-token-here";

/// A README text with the server's address and setup token in place of the defaults.
fn substitute(text: &str, with: &Substitutions) -> String {
    text.replace("127.0.0.1:8080", with.address)
        .replace("localhost:8080", with.address)
        .replace(SETUP_TOKEN_PLACEHOLDER, with.setup_token)
}

/// The start of the script: strict mode, the line being run (named when the script fails),
/// and `curl` failing on an HTTP error status.
const PRELUDE: &str = r#"set -euo pipefail
readme_line=0
readme_expect_error=
trap 'rc=$?; if (( rc != 0 )); then echo "README.md:$readme_line: this command failed (exit $rc)" >&2; fi' EXIT
# An HTTP error fails the request (curl exits 22), unless the command shows the error: then
# a request that succeeds fails.
curl() {
  local arg fail=--fail-with-body
  for arg in "$@"; do
    if [[ $arg == --fail* || $arg == -[!-]*f* ]]; then fail=; fi
  done
  if [[ -z $readme_expect_error ]]; then command curl $fail "$@"; return; fi
  if command curl $fail "$@"; then
    echo "README.md:$readme_line: the command shows an error, but the request succeeded" >&2
    return 1
  else
    local rc=$?
    (( rc == 22 )) && return 0
    return "$rc"
  fi
}
"#;

/// What the README test runs: every block that is not skipped, in order — shell blocks as they
/// are, Python blocks through `$README_PYTHON` — and a count of the blocks run and skipped.
pub fn script(blocks: &[Block], with: &Substitutions) -> (String, usize, Vec<String>) {
    let mut script = String::from(PRELUDE);
    let mut run = 0;
    let mut skipped = Vec::new();
    for block in blocks {
        let skip = match (&block.skip, block.lang.as_str()) {
            (Some(reason), _) => Some(reason.clone()),
            (None, "python") if !with.python => {
                Some("no Python with the `openai` package: DOCENT_TEST_OPENAI_PYTHON".to_owned())
            }
            (None, "python") => None,
            (None, _) if block.is_shell() => None,
            (None, _) => continue,
        };
        if let Some(reason) = skip {
            let note = format!(
                "README.md:{} ({}) not run: {reason}",
                block.line, block.lang
            );
            script.push_str(&format!("echo {}\n", shell_quote(&format!("== {note}"))));
            skipped.push(note);
            continue;
        }
        run += 1;
        let text = substitute(&block.text, with);
        script.push_str(&format!("echo '== README.md:{}'\n", block.line));
        if block.lang == "python" {
            script.push_str(&format!(
                "readme_line={}\n\"$README_PYTHON\" - <<'README_PYTHON_BLOCK'\n{text}README_PYTHON_BLOCK\n",
                block.line
            ));
            continue;
        }
        for command in shell_commands(&text) {
            script.push_str(&format!("readme_line={}\n", block.line + command.line));
            if command.shows_an_error() {
                script.push_str("readme_expect_error=1\n");
                script.push_str(command.text.trim_end());
                script.push_str("\nreadme_expect_error=\n");
            } else {
                script.push_str(command.text.trim_end());
                script.push('\n');
            }
        }
    }
    script.push_str("readme_line=end\n");
    (script, run, skipped)
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
