use super::*;
use std::collections::HashSet;
use std::fs;

const MSG: &[u8] = b"From: a@b.example\r\nSubject: one\r\n\r\nbody\r\n";

fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap();
}

fn make_maildir(dir: &Path) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
}

fn collect(src: Source) -> Vec<RawMessage> {
    src.map(|r| r.unwrap()).collect()
}

#[test]
fn single_eml_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("report.eml");
    write(&path, MSG);
    let msgs = collect(open(&path, FolderRole::Junk).unwrap());
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].raw, MSG);
    let canon = fs::canonicalize(&path).unwrap();
    assert_eq!(
        msgs[0].meta,
        SourceMeta {
            folder: FolderRole::Junk,
            position: Some(crate::domain::ids::Position::from_stored(&format!(
                "file:{}",
                canon.display()
            ))),
            server_time: None,
        }
    );
}

#[test]
fn directory_of_eml_files_skips_others_and_reports_unreadable() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("b.eml"), b"From: b@x.example\r\n\r\nb");
    write(&tmp.path().join("a.EML"), b"From: a@x.example\r\n\r\na");
    write(&tmp.path().join("c.eml"), b"From: c@x.example\r\n\r\nc");
    write(&tmp.path().join("notes.txt"), b"not mail");
    let mut src = open(tmp.path(), FolderRole::Inbox).unwrap();
    assert_eq!(src.notes().len(), 1, "{:?}", src.notes());
    // Vanishes after listing: an Err naming it, then the next message.
    fs::remove_file(tmp.path().join("b.eml")).unwrap();
    let first = src.next().unwrap().unwrap();
    assert!(first.raw.ends_with(b"a"));
    let err = src.next().unwrap().unwrap_err();
    assert!(err.to_string().contains("b.eml"), "{err}");
    let third = src.next().unwrap().unwrap();
    assert!(third.raw.ends_with(b"c"));
    assert!(src.next().is_none());
}

#[test]
fn bad_paths_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = open(&missing, FolderRole::Inbox).err().unwrap();
    assert!(err.to_string().contains("nope"), "{err}");
    // Not empty, yet neither mail nor a Maildir (an empty one is an empty folder: below).
    let wrong_dir = tmp.path().join("wrong");
    fs::create_dir_all(wrong_dir.join("sub")).unwrap();
    let err = open(&wrong_dir, FolderRole::Inbox).err().unwrap();
    assert!(err.to_string().contains("Maildir"), "{err}");
    let empty_file = tmp.path().join("empty.mbox");
    write(&empty_file, b"");
    let src = open(&empty_file, FolderRole::Inbox).unwrap();
    assert_eq!(src.notes().len(), 1);
    assert_eq!(collect(src).len(), 0);
}

#[test]
fn maildir_with_junk_and_sent_subfolders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("Mail");
    make_maildir(&root);
    for folder in [".Junk", ".INBOX.Spam", ".Sent Items", ".Drafts", ".sent"] {
        make_maildir(&root.join(folder));
    }
    write(&root.join("new/1700000000.1.host"), MSG);
    write(&root.join("cur/1600000000.2.host:2,S"), MSG);
    write(&root.join("cur/.hidden"), MSG);
    write(&root.join("tmp/1800000000.3.host"), MSG);
    write(&root.join(".Junk/new/1700000001.4.host"), MSG);
    write(&root.join(".INBOX.Spam/cur/1700000002.5.host:2,"), MSG);
    write(&root.join(".Sent Items/cur/1700000003.6.host:2,S"), MSG);
    write(&root.join(".Drafts/cur/1700000004.7.host:2,D"), MSG);

    let src = open(&root, FolderRole::Inbox).unwrap();
    assert_eq!(src.notes().len(), 1, "{:?}", src.notes());
    assert!(src.notes()[0].contains(".Drafts"));
    let msgs = collect(src);
    let canon = fs::canonicalize(&root).unwrap();
    let got: Vec<(FolderRole, String)> = msgs
        .iter()
        .map(|m| (m.meta.folder, m.meta.position.clone().unwrap().to_string()))
        .collect();
    let want: Vec<(FolderRole, String)> = [
        (FolderRole::Inbox, "INBOX/1600000000.2.host"),
        (FolderRole::Inbox, "INBOX/1700000000.1.host"),
        (FolderRole::Junk, "INBOX.Spam/1700000002.5.host"),
        (FolderRole::Junk, "Junk/1700000001.4.host"),
        (FolderRole::Sent, "Sent Items/1700000003.6.host"),
    ]
    .iter()
    .map(|(r, p)| (*r, format!("maildir:{}/{p}", canon.display())))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn maildir_rename_new_to_cur_keeps_position() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_maildir(root);
    write(&root.join("new/1700000000.M1.host"), MSG);
    let md = Maildir::open(root, None).unwrap();
    let before = md.scan().unwrap();
    assert_eq!(before.len(), 1);

    // A client reads the message: new/ → cur/ with flags. Then it is flagged again.
    fs::rename(
        root.join("new/1700000000.M1.host"),
        root.join("cur/1700000000.M1.host:2,S"),
    )
    .unwrap();
    // Reading the stale entry still works: it is found by unique name.
    let raw = md.read(&before[0]).unwrap();
    assert_eq!(raw.raw, MSG);
    assert_eq!(
        raw.meta.position.as_ref().map(|p| p.as_str()),
        Some(before[0].position.as_str())
    );
    fs::rename(
        root.join("cur/1700000000.M1.host:2,S"),
        root.join("cur/1700000000.M1.host:2,FS"),
    )
    .unwrap();
    let after = md.scan().unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].position, before[0].position);
    assert!(after[0].path.ends_with("cur/1700000000.M1.host:2,FS"));

    // Both copies present mid-move: listed once.
    write(&root.join("new/1700000000.M1.host"), MSG);
    assert_eq!(md.scan().unwrap().len(), 1);
}

#[test]
fn maildir_explicit_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_maildir(root);
    make_maildir(&root.join(".Reports"));
    write(&root.join(".Reports/new/1.x"), MSG);
    let md = Maildir::open(
        root,
        Some(vec![
            ("".into(), FolderRole::Inbox),
            (".Reports".into(), FolderRole::Junk),
        ]),
    )
    .unwrap();
    assert_eq!(
        md.folders,
        [
            ("INBOX".to_string(), FolderRole::Inbox),
            ("Reports".to_string(), FolderRole::Junk)
        ]
    );
    let entries = md.scan().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].folder, FolderRole::Junk);
    assert!(entries[0].position.ends_with("/Reports/1.x"));

    let err = Maildir::open(root, Some(vec![("Junk".into(), FolderRole::Junk)])).unwrap_err();
    assert!(matches!(err, SourceError::MissingFolder { .. }));
    assert!(err.to_string().contains(".Junk"), "{err}");
    // A directory holding files but no cur/ and new/ is the wrong path.
    let err = Maildir::open(&root.join(".Reports/new"), None).unwrap_err();
    assert!(err.to_string().contains("not a Maildir"), "{err}");
}

#[test]
fn an_empty_directory_is_an_empty_folder_and_a_missing_one_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let src = open(&empty, FolderRole::Inbox).unwrap();
    assert_eq!(src.notes().len(), 1, "{:?}", src.notes());
    assert!(
        src.notes()[0].contains("empty directory"),
        "{:?}",
        src.notes()
    );
    assert!(collect(src).is_empty());

    let missing = tmp.path().join("missing");
    let err = open(&missing, FolderRole::Inbox).err().unwrap();
    assert!(matches!(err, SourceError::Open { .. }), "{err}");
    assert!(Maildir::open(&missing, None).is_err());

    // Not empty, yet no mail: still most likely the wrong path.
    let other = tmp.path().join("other");
    write(&other.join("notes.txt"), b"not mail");
    let err = open(&other, FolderRole::Inbox).err().unwrap();
    assert!(err.to_string().contains("no .eml files"), "{err}");

    // A configured Maildir not made yet, with or without named folders: empty, with a note,
    // and what is delivered later is found.
    for folders in [
        None,
        Some(vec![
            ("INBOX".to_string(), FolderRole::Inbox),
            (".Junk".to_string(), FolderRole::Junk),
        ]),
    ] {
        let root = tmp.path().join(format!("new-{}", folders.is_some()));
        fs::create_dir(&root).unwrap();
        let md = Maildir::open(&root, folders).unwrap();
        assert_eq!(md.notes.len(), 1, "{:?}", md.notes);
        assert!(md.scan().unwrap().is_empty());
        make_maildir(&root);
        write(&root.join("new/1.x"), MSG);
        make_maildir(&root.join(".Junk"));
        write(&root.join(".Junk/new/2.x"), MSG);
        let n = if md.folders.len() == 2 { 2 } else { 1 };
        assert_eq!(md.scan().unwrap().len(), n, "{:?}", md.folders);
    }
}

#[test]
fn mbox_splitting_and_from_unescaping() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("box");
    let first = b"From a@b Sat Jan  5 09:14:16 2008\n\
From: a@b.example\n\
\n\
line\n\
>From the start\n\
>>From deeper\n\
From inside a paragraph is not a separator\n\
\n";
    let second = b"From c@d Sat Jan  5 10:00:00 2008\r\n\
From: c@d.example\r\n\
\r\n\
body2\r\n";
    let mut data = first.to_vec();
    data.extend_from_slice(second);
    write(&path, &data);

    let msgs = collect(open(&path, FolderRole::Inbox).unwrap());
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[0].raw,
        b"From: a@b.example\n\nline\nFrom the start\n>From deeper\n\
          From inside a paragraph is not a separator\n"
    );
    assert_eq!(msgs[1].raw, b"From: c@d.example\r\n\r\nbody2\r\n");
    let canon = fs::canonicalize(&path).unwrap();
    assert_eq!(
        msgs[0].meta.position,
        Some(crate::domain::ids::Position::mbox(&canon, 0))
    );
    assert_eq!(
        msgs[1].meta.position,
        Some(crate::domain::ids::Position::mbox(
            &canon,
            first.len() as u64
        ))
    );
    assert_eq!(msgs[1].meta.server_time, None);
}

#[test]
fn sakai_corpus_mbox() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/corpus/sakai-mbox.txt"
    ));
    assert!(
        path.is_file(),
        "test corpus {} is missing; it ships in fixtures/corpus (see fixtures/README.md)",
        path.display()
    );
    let msgs = collect(open(path, FolderRole::Inbox).unwrap());
    assert_eq!(msgs.len(), 323);
    let positions: HashSet<_> = msgs.iter().map(|m| m.meta.position.clone()).collect();
    assert_eq!(positions.len(), 323);
    let data = fs::read(path).unwrap();
    for m in &msgs {
        let pos = m.meta.position.as_deref().unwrap();
        let offset: usize = pos.rsplit_once('#').unwrap().1.parse().unwrap();
        assert!(data[offset..].starts_with(b"From "), "{pos}");
        assert!(m.raw.starts_with(b"Return-Path:"), "{pos}");
        assert!(crate::reading::parse::parse(&m.raw).parsed_ok);
    }
}
