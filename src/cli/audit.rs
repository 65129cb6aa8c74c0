//! `leakdex audit`: an account database against a password index.

use anyhow::{bail, Context};
use clap::Args;
use leakdex::audit::{parse_account_line, Accounts, AuditReport};
use leakdex::hash::hash_to_hex;
use leakdex::{Index, KeyType};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

/// Audit accounts (an Active Directory dump, a user table) against a password index: which
/// accounts use a leaked password, which share one, which have an empty password or still
/// store an LM hash.
///
/// INPUT (a file, gzip or zstd, or `-`/nothing for standard input) holds one account per line,
/// detected line by line:
///   pwdump or secretsdump: `[DOMAIN\]user:RID:LMHASH:NTHASH:::`, optionally followed by
///     ` (status=Enabled)` or ` (status=Disabled)`; history entries (`user_history0`) are
///     accounts of their own. Needs an NTLM index.
///   `user:HASH`: a hash of the index's kind (the hashcat NT form, or unsalted SHA-1 hashes
///     against a SHA-1 index), split at the last `:`.
/// Blank lines are skipped. Any other line, or a hash of the wrong kind, is an error naming
/// the line (exit code 2).
///
/// Findings per account: leaked (the hash is in the index, with its count); shared (other
/// accounts have the same hash: reported as groups); empty password; LM hash present (other
/// than the empty one; LM falls in minutes); disabled (where secretsdump says so; their
/// findings are listed apart). The report prints no hash unless --show-hashes.
///
/// Exit code: 0 when no enabled account has a finding, 1 when one has, 2 on error.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The password index (NTLM for AD dumps).
    #[arg(short, long, value_name = "INDEX")]
    index: PathBuf,
    /// File of accounts; `-` or nothing for standard input.
    input: Option<PathBuf>,
    /// Print one JSON object: `summary` and `accounts` (in input order).
    #[arg(long)]
    json: bool,
    /// Print each account's hash in the report.
    #[arg(long)]
    show_hashes: bool,
    /// Worker threads [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: AuditArgs) -> anyhow::Result<u8> {
    leakdex::sys::forbid_core_dumps();
    super::set_threads(args.threads)?;
    let index = Index::open(&args.index)?;
    if index.key() != KeyType::Password {
        bail!(
            "{}: a {} index; an audit needs a password index (NTLM for AD dumps)",
            args.index.display(),
            index.key()
        );
    }
    if index.store_form() == leakdex::StoreForm::None {
        bail!(
            "{}: a filter-only index (store none) has no counts; an audit needs an index built \
             with --store full or --store compact",
            args.index.display()
        );
    }
    index.prefer_huge_pages();
    let path = args.input.clone().unwrap_or_else(|| PathBuf::from("-"));
    let name = if path.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let mut reader = BufReader::with_capacity(1 << 20, leakdex::build::open_text(&path)?);
    let mut accounts = Accounts::default();
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("{name}: cannot read"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match parse_account_line(text, index.kind()) {
            Ok(Some(account)) => accounts.push(&account),
            Ok(None) => {}
            Err(why) => bail!("{name}:{line_no}: {why}"),
        }
    }
    let report = AuditReport::new(&index, accounts)?;
    // Reports of millions of accounts: buffered, not flushed line by line.
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    if args.json {
        print_json(&report, &mut out)?;
    } else {
        print_text(&report, &args, &name, &index, &mut out)?;
    }
    out.flush()?;
    let n = report.accounts.len();
    let found = (0..n).any(|i| !report.accounts.disabled(i) && report.has_finding(i));
    Ok(u8::from(found))
}

fn print_json(report: &AuditReport, out: &mut impl Write) -> anyhow::Result<()> {
    let s = report.summary();
    let a = &report.accounts;
    // Written account by account: millions of them make no single JSON value in memory.
    writeln!(
        out,
        "{{\"summary\": {},",
        json!({
            "accounts": s.accounts, "leaked": s.leaked, "shared_groups": s.shared_groups,
            "shared_accounts": s.shared_accounts, "empty": s.empty, "lm": s.lm,
            "disabled": s.disabled,
        })
    )?;
    write!(out, "\"accounts\": [")?;
    // Field by field, in the key order serde_json gives the summary (alphabetical).
    let null_or = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    for i in 0..a.len() {
        let group = report.groups[i];
        write!(
            out,
            "{}\n  {{\"count\":{},\"disabled\":{},\"empty\":{},\"lm\":{},\"rid\":{},\
             \"shared_group\":{},\"user\":{}}}",
            if i == 0 { "" } else { "," },
            report.counts[i],
            a.disabled(i),
            report.empty[i],
            a.lm(i),
            null_or(a.rid(i).map(u64::from)),
            null_or((group > 0).then_some(u64::from(group))),
            serde_json::to_string(&a.user(i))?
        )?;
    }
    writeln!(out, "\n]}}")?;
    Ok(())
}

fn print_text(
    report: &AuditReport,
    args: &AuditArgs,
    name: &str,
    index: &Index,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let g = super::grouped;
    let s = report.summary();
    let a = &report.accounts;
    let kind = index.kind();
    let share = |n: u64| {
        if s.accounts == 0 {
            0.0
        } else {
            n as f64 * 100.0 / s.accounts as f64
        }
    };
    writeln!(
        out,
        "audit of {name} against {} ({} index, {} hashes)",
        args.index.display(),
        kind.display_name(),
        g(index.hash_count())
    )?;
    writeln!(out, "accounts           {}", g(s.accounts))?;
    writeln!(
        out,
        "leaked             {} ({:.1}%)",
        g(s.leaked),
        share(s.leaked)
    )?;
    writeln!(
        out,
        "shared passwords   {} in {} groups",
        g(s.shared_accounts),
        g(s.shared_groups)
    )?;
    writeln!(out, "empty password     {}", g(s.empty))?;
    writeln!(out, "LM hash present    {}", g(s.lm))?;
    writeln!(out, "disabled           {}", g(s.disabled))?;
    let common = report.most_common_leaked(10);
    if !common.is_empty() {
        writeln!(
            out,
            "\nmost common leaked passwords, by the accounts using them:"
        )?;
        for (users, count, _) in &common {
            writeln!(
                out,
                "  {:>8} {}  (seen {} {} in the leak)",
                g(*users),
                if *users == 1 { "account " } else { "accounts" },
                g(*count),
                if *count == 1 { "time" } else { "times" }
            )?;
        }
    }
    let label = |i: usize| {
        let mut l = a.user(i).into_owned();
        if let Some(rid) = a.rid(i) {
            l.push_str(&format!(" (RID {rid})"));
        }
        if args.show_hashes {
            l.push_str(&format!(" {}", hash_to_hex(a.hash(i), kind)));
        }
        l
    };
    for disabled in [false, true] {
        let of = |i: &usize| a.disabled(*i) == disabled;
        // Within each kind, the accounts whose hash was seen most in the leak come first.
        let by_count = |mut list: Vec<usize>| {
            list.sort_by(|&x, &y| report.counts[y].cmp(&report.counts[x]).then(x.cmp(&y)));
            list
        };
        let leaked = by_count(
            (0..a.len())
                .filter(of)
                .filter(|&i| report.counts[i] > 0)
                .collect(),
        );
        let mut groups: Vec<&Vec<u32>> = report
            .group_members
            .iter()
            .filter(|m| m.iter().any(|&i| a.disabled(i as usize) == disabled))
            .collect();
        let group_count = |m: &Vec<u32>| report.counts[m[0] as usize];
        groups.sort_by(|x, y| group_count(y).cmp(&group_count(x)).then(x[0].cmp(&y[0])));
        let empty = by_count(
            (0..a.len())
                .filter(of)
                .filter(|&i| report.empty[i])
                .collect(),
        );
        let lm = by_count((0..a.len()).filter(of).filter(|&i| a.lm(i)).collect());
        if leaked.is_empty() && groups.is_empty() && empty.is_empty() && lm.is_empty() {
            continue;
        }
        let heading = if disabled { "disabled accounts: " } else { "" };
        if !leaked.is_empty() {
            writeln!(out, "\n{heading}leaked, most seen first:")?;
            for i in leaked {
                writeln!(out, "  {}  {}", label(i), g(report.counts[i]))?;
            }
        }
        if !groups.is_empty() {
            writeln!(out, "\n{heading}shared passwords, by group:")?;
            for members in groups {
                let group = report.groups[members[0] as usize];
                let names: Vec<String> = members
                    .iter()
                    .filter(|&&m| a.disabled(m as usize) == disabled)
                    .map(|&m| label(m as usize))
                    .collect();
                writeln!(
                    out,
                    "  group {group} ({} accounts): {}",
                    members.len(),
                    names.join(", ")
                )?;
            }
        }
        for (title, list) in [("empty password", empty), ("LM hash present", lm)] {
            if !list.is_empty() {
                writeln!(out, "\n{heading}{title}:")?;
                for i in list {
                    writeln!(out, "  {}", label(i))?;
                }
            }
        }
    }
    Ok(())
}
