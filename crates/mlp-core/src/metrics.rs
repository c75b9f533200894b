//! Numbers made from what a backend reports: the confusion matrix of a set of predictions.

use std::fmt;

/// counts\[label\]\[prediction\]: row = the true digit, column = the network's answer. Labels
/// are bytes, so at most [`MAX_CLASSES`] x [`MAX_CLASSES`] counts, whatever the network's
/// width: a prediction of a class beyond them, which no label can name, is counted in
/// `beyond`. The matrix so costs at most 512 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    pub counts: Vec<Vec<usize>>,
    /// Predictions of a class past the last row, which no label names.
    pub beyond: usize,
}

/// The most classes a label can name: labels are bytes.
pub const MAX_CLASSES: usize = 256;

impl ConfusionMatrix {
    /// `classes` x `classes` counts (at most [`MAX_CLASSES`]), widened to every label.
    pub fn new(classes: usize, labels: &[u8], predictions: &[u32]) -> Self {
        let widest_label = labels.iter().max().map_or(0, |&l| usize::from(l) + 1);
        let classes = classes.min(MAX_CLASSES).max(widest_label);
        let mut counts = vec![vec![0; classes]; classes];
        let mut beyond = 0;
        for (&label, &prediction) in labels.iter().zip(predictions) {
            match counts[usize::from(label)].get_mut(prediction as usize) {
                Some(count) => *count += 1,
                None => beyond += 1,
            }
        }
        Self { counts, beyond }
    }

    /// The fraction on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let total: usize = self.counts.iter().flatten().sum::<usize>() + self.beyond;
        let correct: usize = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        correct as f64 / total.max(1) as f64
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Rows are true digits, columns predictions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "true\\pred")?;
        for class in 0..self.counts.len() {
            write!(f, "{class:>6}")?;
        }
        writeln!(f)?;
        for (label, row) in self.counts.iter().enumerate() {
            write!(f, "{label:>9}")?;
            for count in row {
                write!(f, "{count:>6}")?;
            }
            writeln!(f)?;
        }
        if self.beyond > 0 {
            writeln!(
                f,
                "{} predictions name a class past {}, which no label names",
                self.beyond,
                self.counts.len().saturating_sub(1)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_on_label_row_and_prediction_column() {
        let m = ConfusionMatrix::new(3, &[0, 1, 2, 2], &[0, 2, 2, 1]);
        assert_eq!(m.counts, vec![vec![1, 0, 0], vec![0, 0, 1], vec![0, 1, 1]]);
        assert_eq!(m.accuracy(), 0.5);
        assert!(m.to_string().lines().count() == 4);
    }

    #[test]
    fn a_network_wider_than_any_label_costs_no_more_than_the_labels_allow() {
        let m = ConfusionMatrix::new(1_000_000, &[0, 1, 255], &[0, 999_999, 255]);
        assert_eq!(m.counts.len(), MAX_CLASSES);
        assert_eq!((m.beyond, m.counts[255][255]), (1, 1));
        assert!((m.accuracy() - 2.0 / 3.0).abs() < 1e-12);
        assert!(
            m.to_string()
                .contains("1 predictions name a class past 255")
        );
    }
}
