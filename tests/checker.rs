//! `leakdex::Checker`, the library's batched check: answers in input order that agree with a
//! HashMap model, across batch boundaries, for passwords and hashes; errors at the line that
//! caused them, after the answers before it; a failing output callback.

mod common;

use common::*;
use leakdex::check::{Answer, CheckError, Checker, BATCH};
use leakdex::hash::sha1_password as sha1;
use leakdex::{BuildOptions, HashKind, IndexSet, Presence};
use std::io::Cursor;

/// A password index of `password0` .. `password{n-1}` with count i + 1, and its model.
fn password_index(dir: &std::path::Path, n: u64) -> (IndexSet, Model) {
    let mut model = Model::new();
    let mut text = String::new();
    for i in 0..n {
        let hash = sha1(format!("password{i}").as_bytes());
        model_add(&mut model, hash, i + 1);
        text += &format!("{}:{}\n", hex(&hash, HashKind::Sha1), i + 1);
    }
    let index = build_from_text(dir, text.as_bytes(), &BuildOptions::default()).unwrap();
    (IndexSet::new(vec![index]).unwrap(), model)
}

fn collect(checker: &Checker, input: &[u8]) -> (Vec<Answer>, Result<u64, CheckError>) {
    let mut answers = Vec::new();
    let result = checker.check_lines(Cursor::new(input), "list.txt", |a| {
        answers.push(a);
        Ok(())
    });
    (answers, result.map(|s| s.found))
}

#[test]
fn answers_come_in_input_order_and_agree_with_the_model_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (index, model) = password_index(dir.path(), 500);
    let checker = Checker::new(&index);
    // More than one batch; every seventh item is a password that is not in the index, and
    // one line ends in CRLF (only the line end is removed: a trailing space stays).
    let items: Vec<String> = (0..BATCH as u64 + 1234)
        .map(|i| match i % 7 {
            0 => format!("absent{i}"),
            3 => "password3 ".to_string(),
            _ => format!("password{}", i % 500),
        })
        .collect();
    let mut input = items.join("\n").into_bytes();
    input.extend_from_slice(b"\r\npassword1\r\n");
    let (answers, found) = collect(&checker, &input);
    assert_eq!(answers.len(), items.len() + 1);
    let mut want_found = 0;
    for (i, answer) in answers.iter().enumerate() {
        let item = items.get(i).map_or("password1", |s| s.as_str());
        assert_eq!(answer.line, i as u64 + 1);
        let hash = sha1(item.as_bytes());
        assert_eq!(answer.hash, hash, "line {}", i + 1);
        let want = match model.get(&hash) {
            Some(&c) => Presence::Found(c),
            None => Presence::Absent,
        };
        assert_eq!(answer.presence, want, "line {}", i + 1);
        want_found += u64::from(answer.is_found());
    }
    assert!(want_found > 0);
    assert_eq!(found.unwrap(), want_found);
}

#[test]
fn a_bad_line_stops_the_check_after_the_answers_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (index, model) = password_index(dir.path(), 50);
    let checker = Checker::new(&index).hashes(true);
    let good = |i: u64| hex(&sha1(format!("password{i}").as_bytes()), HashKind::Sha1);
    // Blank lines are skipped but counted; line 5 is not a hash.
    let input = format!(
        "{}\n\n {} \n{}:99\nnot a hash\n{}\n",
        good(1),
        good(2),
        good(3).to_lowercase(),
        good(4)
    );
    let (answers, result) = collect(&checker, input.as_bytes());
    let lines: Vec<u64> = answers.iter().map(|a| a.line).collect();
    assert_eq!(lines, [1, 3, 4]);
    for a in &answers {
        assert_eq!(a.presence, Presence::Found(model[&a.hash]));
    }
    match result {
        Err(CheckError::Item { error, answered }) => {
            assert_eq!(answered, 3);
            let message = error.to_string();
            assert!(message.starts_with("list.txt:5: "), "{message}");
            assert!(
                !message.contains("not a hash"),
                "the item is repeated: {message}"
            );
        }
        other => panic!("expected an item error, got {other:?}"),
    }
}

#[test]
fn a_failing_callback_stops_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = password_index(dir.path(), 10);
    let checker = Checker::new(&index);
    let mut calls = 0;
    let result = checker.check_lines(Cursor::new("password1\npassword2\n"), "-", |_| {
        calls += 1;
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    });
    assert_eq!(calls, 1);
    match result {
        Err(CheckError::Output(e)) => assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe),
        other => panic!("expected an output error, got {other:?}"),
    }
}

#[test]
fn empty_input_answers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = password_index(dir.path(), 3);
    let (answers, found) = collect(&Checker::new(&index), b"");
    assert!(answers.is_empty());
    assert_eq!(found.unwrap(), 0);
}
