package payout

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Rail moves money to payees: a bank's API, a payment provider, or a file
// a treasurer imports. Pay is called with the paid payouts of a run, whose
// ledger transfers have committed. It must be idempotent: a run that
// stopped after Pay and before it was marked complete calls Pay again with
// the same batch. It returns references to what it handed over (file
// paths, a provider's batch ID), recorded on the run. It may block; it is
// called from one goroutine at a time.
type Rail interface {
	Pay(ctx context.Context, b *Batch) (refs []string, err error)
}

// RailFunc adapts a function to Rail.
type RailFunc func(ctx context.Context, b *Batch) ([]string, error)

func (f RailFunc) Pay(ctx context.Context, b *Batch) ([]string, error) { return f(ctx, b) }

// FileRail writes each batch as two files in Dir, named by period and batch
// number: payout-2026-11-000042.csv (WriteCSV) and
// payout-2026-11-000042.xml (WritePain001), for a treasurer to import
// into the hub's bank. Files are written atomically (a temporary file,
// synced, then renamed), so a reader never sees half a batch; writing the
// same batch again rewrites the same bytes.
type FileRail struct {
	Dir string
}

// Pay writes the batch's files and returns their paths.
func (r FileRail) Pay(ctx context.Context, b *Batch) ([]string, error) {
	if err := os.MkdirAll(r.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("payout: batch directory: %w", err)
	}
	var refs []string
	for _, f := range []struct {
		ext   string
		write func(*bytes.Buffer, *Batch) error
	}{
		{".csv", func(w *bytes.Buffer, b *Batch) error { return WriteCSV(w, b) }},
		{".xml", func(w *bytes.Buffer, b *Batch) error { return WritePain001(w, b) }},
	} {
		var buf bytes.Buffer
		if err := f.write(&buf, b); err != nil {
			return nil, err
		}
		path := filepath.Join(r.Dir, b.Name()+f.ext)
		if err := writeAtomic(path, buf.Bytes()); err != nil {
			return nil, fmt.Errorf("payout: write %s: %w", path, err)
		}
		refs = append(refs, path)
	}
	return refs, nil
}

// writeAtomic writes data to path through a synced temporary file in the
// same directory and a rename, then syncs the directory.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o640); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
