//! `leakdex audit` end to end: every input form and finding, the exit codes, the JSON shape,
//! errors that name the line, and a model of the findings of a generated account dump.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// An NTLM index of "password" (count 5) and "123456" (count 3).
fn ntlm_index(dir: &Path) -> PathBuf {
    let list = write_file(
        dir,
        "list.txt",
        b"password\npassword\npassword\npassword\npassword\n123456\n123456\n123456\n",
    );
    let out = dir.join("nt.ldx");
    let r = run(
        &[
            "build",
            "--input",
            "passwords",
            "--kind",
            "ntlm",
            s(&list),
            "-q",
            "-o",
            s(&out),
        ],
        b"",
    );
    assert_eq!(r.status.code(), Some(0), "{}", text(&r.stderr));
    out
}

const PASSWORD_NT: &str = "8846F7EAEE8FB117AD06BDD830B7586C";
const DIGITS_NT: &str = "32ED87BDB5FDC5E9CBA88547376818D4";
const EMPTY_NT: &str = "31D6CFE0D16AE931B73C59D7E0C089C0";
const EMPTY_LM: &str = "AAD3B435B51404EEAAD3B435B51404EE";

fn fixture() -> String {
    [
        format!("CORP\\alice:1104:{EMPTY_LM}:{PASSWORD_NT}:::"),
        format!(
            "CORP\\bob:1105:{EMPTY_LM}:{}::: (status=Enabled)",
            PASSWORD_NT.to_lowercase()
        ),
        String::new(),
        format!("CORP\\carol:1106:E52CAC67419A9A224A3B108F3FA6CB6D:{EMPTY_NT}:::\r"),
        format!("CORP\\dave:1107:{EMPTY_LM}:{DIGITS_NT}::: (status=Disabled)"),
        format!("CORP\\dave_history0:1107:{EMPTY_LM}:0123456789ABCDEF0123456789ABCDEF:::"),
        "frank:0123456789abcdef0123456789abcdef".to_string(),
    ]
    .join("\n")
        + "\n"
}

#[test]
fn every_form_and_finding_with_text_and_json_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let index = ntlm_index(d);
    let input = write_file(d, "ad.txt", fixture().as_bytes());

    let out = run(&["audit", "-i", s(&index), s(&input), "--json"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &v["summary"];
    for (field, n) in [
        ("accounts", 6),
        ("leaked", 3),
        ("shared_groups", 2),
        ("shared_accounts", 4),
        ("empty", 1),
        ("lm", 1),
        ("disabled", 1),
    ] {
        assert_eq!(summary[field], n, "{field}: {summary}");
    }
    let accounts = v["accounts"].as_array().unwrap();
    let users: Vec<&str> = accounts
        .iter()
        .map(|a| a["user"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        [
            "CORP\\alice",
            "CORP\\bob",
            "CORP\\carol",
            "CORP\\dave",
            "CORP\\dave_history0",
            "frank"
        ]
    );
    let field = |i: usize, f: &str| accounts[i][f].clone();
    assert_eq!(field(0, "count"), 5);
    assert_eq!(field(0, "rid"), 1104);
    assert_eq!(field(0, "shared_group"), 1);
    assert_eq!(field(1, "shared_group"), 1);
    assert_eq!(field(2, "count"), 0);
    assert_eq!(field(2, "empty"), true);
    assert_eq!(field(2, "lm"), true);
    assert_eq!(field(2, "shared_group"), serde_json::Value::Null);
    assert_eq!(field(3, "count"), 3);
    assert_eq!(field(3, "disabled"), true);
    assert_eq!(field(4, "shared_group"), 2);
    assert_eq!(field(5, "rid"), serde_json::Value::Null);
    assert_eq!(field(5, "shared_group"), 2);
    for a in accounts {
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "count",
                "disabled",
                "empty",
                "lm",
                "rid",
                "shared_group",
                "user"
            ]
        );
    }

    // The text report: summary, most common, findings by kind, disabled apart, no hashes.
    let out = run(&["audit", "-i", s(&index), s(&input)], b"");
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stdout);
    for needle in [
        "accounts           6",
        "leaked             3 (50.0%)",
        "shared passwords   4 in 2 groups",
        "2 accounts  (seen 5 times in the leak)",
        "leaked, most seen first:\n  CORP\\alice (RID 1104)  5\n  CORP\\bob (RID 1105)  5",
        "group 2 (2 accounts): CORP\\dave_history0 (RID 1107), frank",
        "empty password:\n  CORP\\carol (RID 1106)",
        "disabled accounts: leaked, most seen first:\n  CORP\\dave (RID 1107)  3",
    ] {
        assert!(report.contains(needle), "{needle:?} not in\n{report}");
    }
    assert!(!report.to_uppercase().contains(PASSWORD_NT), "{report}");
    let out = run(&["audit", "-i", s(&index), s(&input), "--show-hashes"], b"");
    assert!(text(&out.stdout).contains(&format!("CORP\\alice (RID 1104) {PASSWORD_NT}  5")));

    // Standard input and gzip, as elsewhere.
    let out = run(
        &["audit", "-i", s(&index), "--json"],
        &gzip(fixture().as_bytes()),
    );
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(w, v);
}

#[test]
fn exit_codes_follow_enabled_accounts_and_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let index = ntlm_index(d);
    let audit = |input: &str| run(&["audit", "-i", s(&index)], input.as_bytes());
    // Nothing found: 0. A finding on a disabled account only: still 0.
    let clean = format!("a:1:{EMPTY_LM}:0123456789ABCDEF0123456789ABCDEF:::\n");
    assert_eq!(audit(&clean).status.code(), Some(0));
    let disabled = format!("{clean}b:2:{EMPTY_LM}:{PASSWORD_NT}::: (status=Disabled)\n");
    assert_eq!(audit(&disabled).status.code(), Some(0));
    // Each finding alone on an enabled account: 1.
    for line in [
        format!("b:2:{EMPTY_LM}:{PASSWORD_NT}:::"),
        format!("b:2:{EMPTY_LM}:{EMPTY_NT}:::"),
        "b:2:E52CAC67419A9A224A3B108F3FA6CB6D:FEDCBA9876543210FEDCBA9876543210:::".to_string(),
        format!("b:2:{EMPTY_LM}:0123456789ABCDEF0123456789ABCDEF:::"),
    ] {
        assert_eq!(
            audit(&format!("{clean}{line}\n")).status.code(),
            Some(1),
            "{line}"
        );
    }
    // Errors: exit 2, the line named, nothing of the line repeated.
    for (input, needle) in [
        (format!("{clean}hunter2\n"), "<stdin>:2: expected"),
        (
            format!("{clean}x:5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8\n"),
            "<stdin>:2: a SHA-1 hash",
        ),
    ] {
        let out = audit(&input);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
        assert!(!text(&out.stderr).contains("hunter2") && !text(&out.stderr).contains("5BAA6"));
    }
    // A SHA-1 index takes user:SHA1 lines, and refuses NT hashes with a hint.
    let list = write_file(d, "p.txt", b"password\n");
    let sha1 = d.join("sha1.ldx");
    run(
        &[
            "build",
            "--input",
            "passwords",
            s(&list),
            "-q",
            "-o",
            s(&sha1),
        ],
        b"",
    );
    let out = run(
        &["audit", "-i", s(&sha1)],
        b"web:5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = run(&["audit", "-i", s(&sha1)], clean.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("needs an NTLM index"),
        "{}",
        text(&out.stderr)
    );
}

/// A generated account dump, audited, against findings computed here from its lines.
#[test]
fn generated_dumps_give_the_models_findings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let index = ntlm_index(d);
    let mut dump = Vec::new();
    leakdex::generate::generate_pwdump(3000, 11, &mut dump).unwrap();
    let input = write_file(d, "dump.txt", &dump);
    let out = run(&["audit", "-i", s(&index), s(&input), "--json"], b"");
    assert!(out.status.code() == Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // The model: counts from the index's list, groups by equal NT hash.
    let counts: HashMap<&str, u64> = [(PASSWORD_NT, 5), (DIGITS_NT, 3)].into();
    let lines: Vec<&str> = std::str::from_utf8(&dump).unwrap().lines().collect();
    let mut by_hash: HashMap<String, Vec<usize>> = HashMap::new();
    let nts: Vec<String> = lines
        .iter()
        .map(|l| l.split(':').nth(3).unwrap().to_uppercase())
        .collect();
    for (i, h) in nts.iter().enumerate() {
        by_hash.entry(h.clone()).or_default().push(i);
    }
    let accounts = v["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), lines.len());
    let mut group_of_first: HashMap<usize, u64> = HashMap::new();
    for (i, (line, a)) in lines.iter().zip(accounts).enumerate() {
        let fields: Vec<&str> = line.split(':').collect();
        assert_eq!(a["user"], fields[0]);
        assert_eq!(a["rid"], fields[1].parse::<u64>().unwrap());
        assert_eq!(
            a["count"],
            counts.get(nts[i].as_str()).copied().unwrap_or(0)
        );
        assert_eq!(a["empty"], nts[i] == EMPTY_NT);
        assert_eq!(a["lm"], fields[2] != EMPTY_LM);
        assert_eq!(a["disabled"], line.ends_with("(status=Disabled)"));
        let members = &by_hash[&nts[i]];
        if members.len() > 1 {
            // One group number per hash, the same for all its accounts.
            let g = *group_of_first
                .entry(members[0])
                .or_insert_with(|| a["shared_group"].as_u64().unwrap());
            assert_eq!(a["shared_group"], g);
        } else {
            assert_eq!(a["shared_group"], serde_json::Value::Null);
        }
    }
    let groups = by_hash.values().filter(|m| m.len() > 1).count();
    assert_eq!(v["summary"]["shared_groups"], groups);
    assert!(groups > 3, "the generator shares passwords");
    assert!(v["summary"]["leaked"].as_u64().unwrap() > 50);
    assert!(v["summary"]["empty"].as_u64().unwrap() > 5);
    assert!(v["summary"]["lm"].as_u64().unwrap() > 5);
    assert!(v["summary"]["disabled"].as_u64().unwrap() > 5);
    assert!(lines.iter().any(|l| l.contains("_history1:")));
}
