//! `spamgate learn`: feeds stored mail (files, directories, Maildirs, mbox
//! files, read as `spamgate replay` reads them) to the classifier as spam
//! or ham, or takes it back out with `--forget`.
//!
//! The file backend saves every [`SAVE_EVERY`] messages and at the end, so
//! that an interrupted run keeps most of its work; each save is atomic.

use std::path::{Path, PathBuf};

use super::replay::{message_files, read_messages, Progress};
use crate::bayes::{Bayes, BayesError, Class, ForgetOutcome, LearnOutcome};

/// Messages between two saves of the file backend during a run.
pub const SAVE_EVERY: usize = 2000;

#[derive(Debug, Clone, Default)]
pub struct LearnOptions {
    pub spam: Vec<PathBuf>,
    pub ham: Vec<PathBuf>,
    /// Unlearn the messages instead (the class is the one they were learned as).
    pub forget: bool,
    /// Show a progress line on stderr (`None`: when stderr is a terminal).
    pub progress: Option<bool>,
}

/// What a run did, message by message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LearnSummary {
    pub learned: usize,
    /// Learned before as the same class: counted once.
    pub known: usize,
    /// Learned before as the other class: moved.
    pub moved: usize,
    pub forgotten: usize,
    /// `--forget` of a message never learned.
    pub not_learned: usize,
    /// Files or paths that could not be read.
    pub unreadable: usize,
}

impl LearnSummary {
    pub fn messages(&self) -> usize {
        self.learned + self.known + self.moved + self.forgotten + self.not_learned
    }

    /// The final line `spamgate learn` prints.
    pub fn line(&self) -> String {
        format!(
            "learned {}, already known {}, moved {}, forgotten {}, not learned before {}, skipped unreadable {}",
            self.learned, self.known, self.moved, self.forgotten, self.not_learned, self.unreadable
        )
    }
}

pub async fn learn(bayes: &Bayes, options: &LearnOptions) -> Result<LearnSummary, BayesError> {
    let mut run = Run {
        bayes,
        forget: options.forget,
        summary: LearnSummary::default(),
        progress: Progress::new(options.progress),
    };
    for (paths, class) in [(&options.spam, Class::Spam), (&options.ham, Class::Ham)] {
        for path in paths {
            run.path(path, class).await?;
        }
    }
    run.progress.done(run.summary.messages());
    bayes.save()?;
    Ok(run.summary)
}

struct Run<'a> {
    bayes: &'a Bayes,
    forget: bool,
    summary: LearnSummary,
    progress: Progress,
}

impl Run<'_> {
    async fn path(&mut self, path: &Path, class: Class) -> Result<(), BayesError> {
        let files = match message_files(path) {
            Ok(files) => files,
            Err(error) => {
                self.unreadable(path, &error);
                return Ok(());
            }
        };
        for file in files {
            let messages = match read_messages(&file) {
                Ok(messages) => messages,
                Err(error) => {
                    self.unreadable(&file, &error);
                    continue;
                }
            };
            for message in messages {
                self.one(&super::canonical(&message), class).await?;
            }
        }
        Ok(())
    }

    fn unreadable(&mut self, path: &Path, error: &std::io::Error) {
        eprintln!("spamgate: skipping {}: {error}", path.display());
        self.summary.unreadable += 1;
    }

    async fn one(&mut self, message: &[u8], class: Class) -> Result<(), BayesError> {
        let s = &mut self.summary;
        match self.forget {
            true => match self.bayes.forget(message).await? {
                ForgetOutcome::Forgotten => s.forgotten += 1,
                ForgetOutcome::Unknown => s.not_learned += 1,
            },
            false => match self.bayes.learn(message, class).await? {
                LearnOutcome::Learned => s.learned += 1,
                LearnOutcome::Known => s.known += 1,
                LearnOutcome::Moved => s.moved += 1,
            },
        }
        let done = s.messages();
        self.progress.tick(done);
        if done.is_multiple_of(SAVE_EVERY) {
            self.bayes.save()?;
        }
        Ok(())
    }
}
