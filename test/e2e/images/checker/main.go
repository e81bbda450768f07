// Command checker is the main container of make e2e's Jobs (busybox cannot be pulled there): it
// checks that a directory holds exactly the expected files, each with its expected SHA-256.
//
//	checker --dir /data --expect a.tif=<sha256> --expect sub/b.json=<sha256>
//
// It prints one line per file and exits 0 when all match, 1 otherwise, 2 on bad flags.
//
//	checker --inspect-pid=1
//
// prints what the kernel says of another process: "uid=U gid=G root=ro|rw" (its effective IDs and
// its root mount's mode), for an ephemeral container that shares a pod's process namespace.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

type expectations map[string]string

func (e expectations) String() string { return fmt.Sprint(map[string]string(e)) }

func (e expectations) Set(s string) error {
	name, sum, ok := strings.Cut(s, "=")
	if !ok || name == "" || len(sum) != 64 {
		return fmt.Errorf("%q: want PATH=SHA256", s)
	}
	e[filepath.ToSlash(name)] = strings.ToLower(sum)
	return nil
}

func main() {
	want := expectations{}
	dir := flag.String("dir", "/data", "Directory to check.")
	flag.Var(want, "expect", "PATH=SHA256 of a file below --dir (repeatable).")
	inspect := flag.Int("inspect-pid", 0, "Print the uid, gid and root mount mode of this process, and exit.")
	stay := flag.Bool("stay", false, "After the files match, keep running until SIGTERM, as a Deployment's container.")
	flag.Parse()
	if *inspect > 0 {
		out, err := inspectPID(*inspect)
		if err != nil {
			fmt.Fprintf(os.Stderr, "checker: %v\n", err)
			os.Exit(1)
		}
		fmt.Println(out)
		return
	}
	if len(want) == 0 {
		fmt.Fprintln(os.Stderr, "checker: no --expect given")
		os.Exit(2)
	}
	got, err := sums(*dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "checker: %v\n", err)
		os.Exit(1)
	}
	// fetch records what it placed; a main container can read it (issue 21).
	bad := 0
	if _, ok := want[recordName]; !ok {
		if err := checkRecord(filepath.Join(*dir, recordName)); err != nil {
			fmt.Printf("BAD RECORD %s: %v\n", recordName, err)
			bad++
		}
		delete(got, recordName)
	}
	wrong, checked := compare(want, got)
	if bad += wrong; bad > 0 {
		fmt.Printf("checker: %d of %d files wrong\n", bad, checked)
		os.Exit(1)
	}
	fmt.Printf("checker: all %d files match\n", len(want))
	if *stay {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
	}
}

// compare prints one line for each file expected or found, in name order, and returns how many are
// wrong (missing, unexpected or different) of how many it checked.
func compare(want, got map[string]string) (wrong, checked int) {
	names := make([]string, 0, len(want)+len(got))
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		w, expected := want[n]
		g, present := got[n]
		switch {
		case !present:
			fmt.Printf("MISSING    %s\n", n)
		case !expected:
			fmt.Printf("UNEXPECTED %s %s\n", n, g)
		case g != w:
			fmt.Printf("MISMATCH   %s got %s want %s\n", n, g, w)
		default:
			fmt.Printf("OK         %s %s\n", n, g)
			continue
		}
		wrong++
	}
	return wrong, len(names)
}

// inspectPID reads /proc/<pid>/status (effective uid and gid) and /proc/<pid>/mountinfo (the mode of
// its root mount).
func inspectPID(pid int) (string, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	ids := map[string]string{}
	for line := range strings.SplitSeq(string(status), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if f := strings.Fields(rest); ok && (key == "Uid" || key == "Gid") && len(f) > 1 {
			ids[key] = f[1] // real, effective, saved, filesystem
		}
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return "", err
	}
	root := "unknown"
	for line := range strings.SplitSeq(string(mounts), "\n") {
		// id parent major:minor root mount-point options ...
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			root = "rw"
			for o := range strings.SplitSeq(f[5], ",") {
				if o == "ro" {
					root = "ro"
				}
			}
		}
	}
	return fmt.Sprintf("uid=%s gid=%s root=%s", ids["Uid"], ids["Gid"], root), nil
}

// recordName is the file fetch writes into its destination to say what it placed there.
const recordName = ".taskdownload.json"

// checkRecord checks that fetch's record is there and names a package.
func checkRecord(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r struct {
		URL  string `json:"url"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	if r.URL == "" || strings.Contains(r.URL, "?") || r.Size <= 0 {
		return fmt.Errorf("want a url without query and a size, got %s", b)
	}
	fmt.Printf("OK         %s %s (%d bytes)\n", recordName, r.URL, r.Size)
	return nil
}

// sums returns the SHA-256 of every regular file below dir, by slash-separated relative path.
func sums(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			out[filepath.ToSlash(rel)] = "not-a-regular-file"
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return out, err
}
