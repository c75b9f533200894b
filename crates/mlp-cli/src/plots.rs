//! `--plots DIR`: the pictures of a run as PNG files, drawn with plotters: the loss curves,
//! the accuracy curve, a grid of validation digits with label and prediction, and the
//! confusion matrix as a heat map. The font is compiled in (DejaVu Sans), so that drawing
//! needs no fonts on the machine.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use mlp_core::atomic::write_atomically;
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::{Dataset, EpochMetrics};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const FONT: &str = "sans-serif";
/// Mistakes are drawn in this colour in the digit grid.
const MISTAKE: RGBColor = RGBColor(200, 30, 30);
const TRAIN_COLOUR: RGBColor = RGBColor(31, 119, 180);
const VALIDATION_COLOUR: RGBColor = RGBColor(255, 127, 14);

/// What the plots call each class: the data set's names where it has them (Fashion-MNIST's
/// "Sandal"), else the class number (MNIST's digits).
#[derive(Debug, Clone, Copy)]
pub struct ClassNames<'a>(pub Option<&'a [String]>);

impl ClassNames<'_> {
    /// Class `class`'s name, or its number.
    fn of(&self, class: usize) -> String {
        match self.0.and_then(|names| names.get(class)) {
            Some(name) => name.clone(),
            None => class.to_string(),
        }
    }

    /// "digit", or "class" for a data set that names its classes.
    fn kind(&self) -> &'static str {
        if self.0.is_some() { "class" } else { "digit" }
    }

    /// The most characters a class's name has.
    fn longest(&self, classes: usize) -> i32 {
        (0..classes)
            .map(|c| self.of(c).chars().count())
            .max()
            .unwrap_or(1) as i32
    }
}

/// The files one run draws.
pub struct Plots {
    pub loss: PathBuf,
    pub accuracy: PathBuf,
    pub digits: PathBuf,
    pub confusion: PathBuf,
}

impl Plots {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            loss: dir.join("loss.png"),
            accuracy: dir.join("accuracy.png"),
            digits: dir.join("digits.png"),
            confusion: dir.join("confusion.png"),
        }
    }

    /// The four files.
    pub fn files(&self) -> [&PathBuf; 4] {
        [&self.loss, &self.accuracy, &self.digits, &self.confusion]
    }

    /// Draws all four; `loss` names the loss and `validation` the images the curves were
    /// validated on; `predictions` are the final model's, one per test image.
    pub fn draw(
        &self,
        history: &[EpochMetrics],
        loss: &str,
        validation: &str,
        test: &Dataset,
        predictions: &[u32],
        (confusion, names): (&ConfusionMatrix, ClassNames),
    ) -> Result<()> {
        if let Some(dir) = self.loss.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the plots directory {}", dir.display()))?;
        }
        register_font();
        loss_curves(history, loss, validation, &self.loss)
            .with_context(|| cannot_draw(&self.loss))?;
        accuracy_curve(history, validation, &self.accuracy)
            .with_context(|| cannot_draw(&self.accuracy))?;
        digit_grid(test, predictions, names, &self.digits)
            .with_context(|| cannot_draw(&self.digits))?;
        confusion_heat_map(confusion, names, &self.confusion)
            .with_context(|| cannot_draw(&self.confusion))?;
        Ok(())
    }
}

fn cannot_draw(path: &Path) -> String {
    format!("cannot draw {}", path.display())
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (style, bytes) in [
            (FontStyle::Normal, dejavu::sans::regular()),
            (FontStyle::Bold, dejavu::sans::bold()),
        ] {
            // DejaVu is a valid TrueType font; a failure here would be a broken build.
            let _ = plotters::style::register_font(FONT, style, bytes);
        }
    });
}

/// Draws a picture of `size` pixels with `draw` and writes it to `path` as a PNG, atomically:
/// a failed write (a full disk, say) leaves no truncated picture.
fn save_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root)?;
        drawing(root.present())?;
    }
    let picture =
        image::RgbImage::from_raw(size.0, size.1, pixels).expect("3 bytes for every pixel");
    let mut png = Vec::new();
    picture.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(write_atomically(path, &png)?)
}

/// plotters' errors carry the backend's type; this keeps their message.
fn drawing<T, E: std::fmt::Display>(result: std::result::Result<T, E>) -> Result<T> {
    result.map_err(|e| anyhow!("{e}"))
}

/// A chart with epochs along x (whole numbers only) and an f64 quantity along y.
type EpochChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Epochs are whole: a tick between two gets no label.
fn whole_epochs(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// The axes, grid and labels of a chart of `epochs` epochs against `y_desc` over `y_range`.
fn epoch_chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
    y_desc: &str,
    y_range: std::ops::Range<f64>,
    epochs: usize,
) -> Result<EpochChart<'a, 'b>> {
    let y_decimals = if y_range.end - y_range.start < 0.1 {
        3
    } else {
        2
    };
    let mut chart = drawing(
        ChartBuilder::on(root)
            .caption(caption, (FONT, 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0.5..epochs as f64 + 0.5, y_range),
    )?;
    drawing(
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_labels(epochs.min(15) + 2)
            .x_label_formatter(&whole_epochs)
            .y_label_formatter(&|y| format!("{y:.y_decimals$}"))
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 18))
            .draw(),
    )?;
    Ok(chart)
}

/// One value per epoch as a line with a dot at each epoch, named in the legend when `name`
/// is given. Returns the last point.
fn draw_curve(
    chart: &mut EpochChart,
    values: &[f64],
    colour: RGBColor,
    name: Option<&str>,
) -> Result<Option<(f64, f64)>> {
    let points: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| ((i + 1) as f64, v))
        .collect();
    let line = drawing(chart.draw_series(LineSeries::new(
        points.iter().copied(),
        colour.stroke_width(2),
    )))?;
    if let Some(name) = name {
        line.label(name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
        });
    }
    drawing(chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))))?;
    Ok(points.last().copied())
}

/// Training and validation loss per epoch; `loss` names it, `validation` the images.
fn loss_curves(history: &[EpochMetrics], loss: &str, validation: &str, path: &Path) -> Result<()> {
    save_png(path, (900, 560), |root| {
        drawing(root.fill(&WHITE))?;
        let train: Vec<f64> = history.iter().map(|m| m.train_loss).collect();
        let validation_loss: Vec<f64> = history.iter().map(|m| m.val_loss).collect();
        let highest = train
            .iter()
            .chain(&validation_loss)
            .copied()
            .fold(0.0f64, f64::max);
        let mut chart = epoch_chart(
            root,
            &format!("Loss per epoch ({loss})"),
            "loss",
            0.0..highest * 1.08,
            history.len(),
        )?;
        draw_curve(
            &mut chart,
            &train,
            TRAIN_COLOUR,
            Some("training (mean over the epoch's batches)"),
        )?;
        draw_curve(
            &mut chart,
            &validation_loss,
            VALIDATION_COLOUR,
            Some(&format!("validation on {validation} (after the epoch)")),
        )?;
        drawing(
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 16))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw(),
        )?;
        Ok(())
    })
}

/// Validation accuracy per epoch, in percent, on the images `validation` names.
fn accuracy_curve(history: &[EpochMetrics], validation: &str, path: &Path) -> Result<()> {
    save_png(path, (900, 560), |root| {
        drawing(root.fill(&WHITE))?;
        let percent: Vec<f64> = history.iter().map(|m| 100.0 * m.val_accuracy).collect();
        let lowest = percent.iter().copied().fold(100.0f64, f64::min);
        let highest = percent.iter().copied().fold(0.0f64, f64::max);
        let margin = ((highest - lowest) * 0.1).max(0.5);
        let mut chart = epoch_chart(
            root,
            "Validation accuracy per epoch",
            &format!("accuracy on {validation} (%)"),
            (lowest - margin).max(0.0)..(highest + margin).min(100.0),
            history.len(),
        )?;
        if let Some((epoch, last)) = draw_curve(&mut chart, &percent, VALIDATION_COLOUR, None)? {
            drawing(chart.draw_series(std::iter::once(Text::new(
                format!("final {last:.2}%"),
                (epoch, last),
                TextStyle::from((FONT, 16).into_font()).pos(Pos::new(HPos::Right, VPos::Bottom)),
            ))))?;
        }
        Ok(())
    })
}

/// Digits in the grid: the first validation images, row by row.
const GRID_COLUMNS: usize = 10;
const GRID_ROWS: usize = 6;
/// Screen pixels per image pixel.
const ZOOM: i32 = 3;

/// The first validation images as the network saw them, each with "label → prediction";
/// a mistake gets a red frame and a red caption.
fn digit_grid(
    validation: &Dataset,
    predictions: &[u32],
    names: ClassNames,
    path: &Path,
) -> Result<()> {
    let side = validation.rows as i32 * ZOOM;
    let classes = validation
        .labels
        .iter()
        .max()
        .map_or(1, |&l| usize::from(l) + 1);
    // A caption is two names and an arrow, about 9 pixels a character at 16 points.
    let caption_w = (2 * names.longest(classes) + 3) * 9;
    let (cell_w, cell_h) = ((side + 24).max(caption_w + 8), side + 34);
    let title_h = 60;
    let width = cell_w * GRID_COLUMNS as i32 + 20;
    let height = cell_h * GRID_ROWS as i32 + title_h + 10;
    save_png(path, (width as u32, height as u32), |root| {
        drawing(root.fill(&WHITE))?;
        let shown = (GRID_COLUMNS * GRID_ROWS).min(validation.len());
        let mistakes = (0..shown)
            .filter(|&i| {
                predictions.get(i).copied() != validation.labels.get(i).map(|&l| u32::from(l))
            })
            .count();
        drawing(root.draw_text(
        &format!(
            "The first {shown} test images: true {kind} → network's prediction ({mistakes} mistakes, in red)",
            kind = names.kind()
        ),
        &TextStyle::from((FONT, 20).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
        (width / 2, title_h / 2),
    ))?;
        let pixels = validation.pixels();
        for i in 0..shown {
            let (x0, y0) = (
                10 + (i % GRID_COLUMNS) as i32 * cell_w + (cell_w - side) / 2,
                title_h + (i / GRID_COLUMNS) as i32 * cell_h,
            );
            let image = &validation.images[i * pixels..(i + 1) * pixels];
            for (p, &ink) in image.iter().enumerate() {
                let (x, y) = (
                    (p % validation.cols) as i32 * ZOOM,
                    (p / validation.cols) as i32 * ZOOM,
                );
                let paper = 255 - ink;
                drawing(root.draw(&Rectangle::new(
                    [(x0 + x, y0 + y), (x0 + x + ZOOM, y0 + y + ZOOM)],
                    RGBColor(paper, paper, paper).filled(),
                )))?;
            }
            let label = validation.labels[i];
            let prediction = predictions.get(i).copied();
            let wrong = prediction != Some(u32::from(label));
            let colour = if wrong { MISTAKE } else { BLACK };
            drawing(root.draw(&Rectangle::new(
                [(x0 - 1, y0 - 1), (x0 + side, y0 + side)],
                colour.stroke_width(if wrong { 3 } else { 1 }),
            )))?;
            let caption = match prediction {
                Some(p) => format!("{} → {}", names.of(label.into()), names.of(p as usize)),
                None => format!("{} → ?", names.of(label.into())),
            };
            let points = if names.0.is_some() { 16 } else { 20 };
            let font = if wrong {
                (FONT, points, FontStyle::Bold).into_font()
            } else {
                (FONT, points).into_font()
            };
            drawing(
                root.draw_text(
                    &caption,
                    &TextStyle::from(font)
                        .color(&colour)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                    (x0 + side / 2, y0 + side + 6),
                ),
            )?;
        }
        Ok(())
    })
}

/// The confusion matrix: a cell per (true digit, prediction) with its count, coloured by the
/// share of the true digit's images that landed there.
fn confusion_heat_map(confusion: &ConfusionMatrix, names: ClassNames, path: &Path) -> Result<()> {
    let classes = confusion.counts.len() as i32;
    let cell = 60;
    // Room for the longest name beside the rows and above the columns, 10 pixels a character.
    let name_w = 10 * names.longest(classes as usize);
    let (left, top) = (90 + name_w, 90 + name_w);
    let size = (left + cell * classes + 150, top + cell * classes + 30);
    save_png(path, (size.0 as u32, size.1 as u32), |root| {
        drawing(root.fill(&WHITE))?;
        let centred = |points: u32| {
            TextStyle::from((FONT, points).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
        };
        drawing(root.draw_text(
            &format!(
                "Confusion matrix on the test set (accuracy {:.2}%)",
                100.0 * confusion.accuracy()
            ),
            &centred(22),
            (size.0 / 2, 28),
        ))?;
        drawing(root.draw_text(
            &format!("predicted {}", names.kind()),
            &centred(18),
            (left + cell * classes / 2, top - name_w - 30),
        ))?;
        drawing(root.draw_text(
            &format!("true {}", names.kind()),
            &centred(18).transform(FontTransform::Rotate270),
            (left - name_w - 50, top + cell * classes / 2),
        ))?;
        // Names end beside the grid: right-aligned on the left, and on top read upwards where
        // they are words.
        let beside =
            |h: HPos| TextStyle::from((FONT, 18).into_font()).pos(Pos::new(h, VPos::Center));
        let above = match names.0 {
            Some(_) => beside(HPos::Left).transform(FontTransform::Rotate270),
            None => beside(HPos::Center),
        };
        for class in 0..classes {
            let (middle, name) = (class * cell + cell / 2, names.of(class as usize));
            drawing(root.draw_text(&name, &above, (left + middle, top - 18)))?;
            drawing(root.draw_text(&name, &beside(HPos::Right), (left - 10, top + middle)))?;
        }
        for (label, row) in confusion.counts.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (prediction, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let (x, y) = (left + prediction as i32 * cell, top + label as i32 * cell);
                drawing(root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    shade(share).filled(),
                )))?;
                drawing(root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    RGBColor(200, 200, 200).stroke_width(1),
                )))?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                drawing(root.draw_text(
                    &count.to_string(),
                    &centred(16).color(&ink),
                    (x + cell / 2, y + cell / 2),
                ))?;
            }
        }
        colour_key(root, (left + cell * classes + 40, top), cell * classes)?;
        Ok(())
    })
}

/// The confusion matrix's colour key at (`key_x`, `top`), `key_h` pixels high: the share of a
/// true class's images, 0 at the bottom to 1 at the top.
fn colour_key(
    root: &DrawingArea<BitMapBackend, Shift>,
    (key_x, top): (i32, i32),
    key_h: i32,
) -> Result<()> {
    let centred = |points: u32| {
        TextStyle::from((FONT, points).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
    };
    for step in 0..key_h {
        let share = 1.0 - f64::from(step) / f64::from(key_h);
        drawing(root.draw(&Rectangle::new(
            [(key_x, top + step), (key_x + 24, top + step + 1)],
            shade(share).filled(),
        )))?;
    }
    drawing(root.draw(&Rectangle::new(
        [(key_x, top), (key_x + 24, top + key_h)],
        BLACK.stroke_width(1),
    )))?;
    for (share, text) in [(1.0, "100%"), (0.5, "50%"), (0.0, "0%")] {
        let y = top + ((1.0 - share) * f64::from(key_h)) as i32;
        drawing(root.draw_text(
            text,
            &TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            (key_x + 30, y),
        ))?;
    }
    drawing(root.draw_text(
        "share of the true class's images",
        &centred(15).transform(FontTransform::Rotate90),
        (key_x + 90, top + key_h / 2),
    ))?;
    Ok(())
}

/// White for 0 through to dark blue for 1; the square root keeps small shares visible.
fn shade(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0).sqrt();
    let mix = |from: f64, to: f64| (from + (to - from) * t).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

#[cfg(test)]
mod tests {
    use super::ClassNames;

    #[test]
    fn classes_are_named_where_the_data_set_names_them_and_numbered_elsewhere() {
        let names = ["T-shirt/top".to_string(), "Trouser".to_string()];
        let fashion = ClassNames(Some(&names));
        assert_eq!((fashion.of(1), fashion.kind()), ("Trouser".into(), "class"));
        assert_eq!(fashion.longest(2), 11);
        let digits = ClassNames(None);
        assert_eq!((digits.of(7), digits.kind()), ("7".into(), "digit"));
    }
}
