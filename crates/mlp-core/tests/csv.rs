//! The CSV reader (Kaggle's Digit Recognizer layout): MNIST's test set written as CSV by this
//! test reads back as the very bytes and labels the IDX loader gives, labelled and not; and a
//! table of bad files, each an error naming the file, the line and the column, none a panic.

mod common;

use std::fs;
use std::path::Path;

use common::{Scratch, mnist_dir};
use mlp_core::data::{self, DataFormat, MAX_LINE_BYTES, read_csv};

/// `set` as Kaggle writes it: a header, then label (where `labelled`) and pixels per line.
fn kaggle_csv(set: &mlp_core::Dataset, labelled: bool) -> String {
    let pixels = set.pixels();
    let mut header: Vec<String> = (0..pixels).map(|i| format!("pixel{i}")).collect();
    if labelled {
        header.insert(0, "label".into());
    }
    let mut text = header.join(",") + "\n";
    for (image, label) in set.images.chunks(pixels).zip(&set.labels) {
        let mut fields: Vec<String> = image.iter().map(u8::to_string).collect();
        if labelled {
            fields.insert(0, label.to_string());
        }
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

#[test]
fn mnist_written_as_csv_reads_back_the_same_bytes() {
    let test = data::load(&mnist_dir(), DataFormat::Mnist).unwrap().test;
    let scratch = Scratch::new("csv-round-trip");
    for labelled in [true, false] {
        let path = scratch.path().join(format!("test-{labelled}.csv"));
        fs::write(&path, kaggle_csv(&test, labelled)).unwrap();
        let read = read_csv(&path).unwrap();
        assert_eq!(read.labelled, labelled);
        assert_eq!((read.set.rows, read.set.cols), (28, 28));
        assert_eq!(read.set.images, test.images);
        if labelled {
            assert_eq!(read.set.labels, test.labels);
        } else {
            assert!(read.set.labels.iter().all(|&l| l == 0));
        }
    }
}

#[test]
fn bad_csv_files_are_refused_with_their_place() {
    let scratch = Scratch::new("csv-bad");
    let header = |pixels: usize, labelled: bool| {
        let mut names: Vec<String> = (0..pixels).map(|i| format!("pixel{i}")).collect();
        if labelled {
            names.insert(0, "label".into());
        }
        names.join(",")
    };
    let row = |label: &str, pixels: &[&str]| format!("{label},{}", pixels.join(","));
    let four = ["0", "10", "200", "255"];
    let good = |rows: &[String]| format!("{}\n{}\n", header(4, true), rows.join("\n"));
    let long_line = format!(
        "{}\n7,{}\n",
        header(4, true),
        "1".repeat(MAX_LINE_BYTES as usize + 10)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("an empty file", vec![], "line 1: the file is empty"),
        (
            "a header alone",
            format!("{}\n", header(4, true)).into_bytes(),
            "holds no image",
        ),
        (
            "a misnamed column",
            b"label,pixel0,pixl1,pixel2,pixel3\n1,0,0,0,0\n".to_vec(),
            "line 1, column 3: the header names it \"pixl1\"",
        ),
        (
            "a first column that is neither",
            b"digit,pixel0\n".to_vec(),
            "line 1, column 1: the header names it \"digit\", expected \"label\" or \"pixel0\"",
        ),
        (
            "not a square",
            format!("{}\n", header(5, true)).into_bytes(),
            "5 pixels, which is not a square image",
        ),
        (
            "a short row",
            good(&[row("1", &four), row("2", &four[..3])]).into_bytes(),
            "line 3: 4 columns, where the header has 5",
        ),
        (
            "a long row",
            good(&[row("1", &["0", "0", "0", "0", "0"])]).into_bytes(),
            "line 2: 6 columns, where the header has 5",
        ),
        (
            "a pixel of 256",
            good(&[row("1", &["0", "256", "0", "0"])]).into_bytes(),
            "line 2, column 3: the pixel is 256, outside 0..255",
        ),
        (
            "a negative pixel",
            good(&[row("1", &["0", "0", "-1", "0"])]).into_bytes(),
            "line 2, column 4: the pixel \"-1\" is not a whole number",
        ),
        (
            "a pixel that is no number",
            good(&[row("1", &["0", "0", "0", "x"])]).into_bytes(),
            "line 2, column 5: the pixel \"x\" is not a whole number",
        ),
        (
            "a fractional pixel",
            good(&[row("1", &["0.5", "0", "0", "0"])]).into_bytes(),
            "line 2, column 2: the pixel \"0.5\"",
        ),
        (
            "a missing label",
            good(&[row("", &four)]).into_bytes(),
            "line 2, column 1: the label is missing",
        ),
        (
            "a label of 300",
            good(&[row("300", &four)]).into_bytes(),
            "line 2, column 1: the label is 300",
        ),
        (
            "a line past the limit",
            long_line.into_bytes(),
            "line 2: the line is longer than 1048576 bytes",
        ),
        (
            "bytes that are not text",
            [header(4, true).into_bytes(), b"\n1,0,0,\xff,0\n".to_vec()].concat(),
            "line 2: the line is not UTF-8",
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, expected) in cases {
        let path = scratch.path().join("bad.csv");
        fs::write(&path, &bytes).unwrap();
        let message = match read_csv(&path) {
            Ok(read) => format!("read {} images", read.set.len()),
            Err(error) => error.to_string(),
        };
        let ok = message.contains(expected) && message.contains("bad.csv");
        println!("{} {name:<32} {message}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures.push(format!("{name}: {message:?} lacks {expected:?}"));
        }
    }
    // A FIFO is refused before it is opened (opening it would wait for a writer).
    let fifo = scratch.path().join("fifo.csv");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let message = read_csv(&fifo).unwrap_err().to_string();
    assert!(message.contains("it is a FIFO"), "{message}");
    let message = read_csv(Path::new("/nonexistent/train.csv"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("/nonexistent/train.csv"), "{message}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_spreadsheet_s_byte_order_mark_and_crlf_lines_are_read() {
    let scratch = Scratch::new("csv-bom");
    let path = scratch.path().join("excel.csv");
    fs::write(
        &path,
        "\u{feff}label,pixel0,pixel1,pixel2,pixel3\r\n3,1,2,3,4\r\n\r\n",
    )
    .unwrap();
    let read = read_csv(&path).unwrap();
    assert_eq!(
        (read.set.images, read.set.labels),
        (vec![1, 2, 3, 4], vec![3])
    );
    assert_eq!((read.set.rows, read.set.cols), (2, 2));
}
