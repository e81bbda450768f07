package imagetest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Dockerfile is what the Dockerfile's final stage says about the image it builds.
type Dockerfile struct {
	Base       string            // the final FROM
	User       string            // USER
	Entrypoint []string          // ENTRYPOINT, exec form
	CopyDests  []string          // destinations of COPY and ADD, in order
	Labels     map[string]string // LABEL, values unquoted but ${VAR} left as written
	BuildRuns  []string          // the RUN instructions of every stage, continuation lines joined
}

// ParseDockerfile reads the instructions the image checks compare against. It understands the subset
// of the syntax the Dockerfile uses: comments, line continuations, exec-form ENTRYPOINT, and
// key="value" LABEL pairs.
func ParseDockerfile(file string) (*Dockerfile, error) {
	instructions, err := readInstructions(file)
	if err != nil {
		return nil, err
	}
	d := &Dockerfile{Labels: map[string]string{}}
	for _, ins := range instructions {
		if err := d.apply(ins); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// readInstructions returns the file's instructions, one a string: comments and blank lines left out,
// continued lines joined.
func readInstructions(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()

	var instructions []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		instructions = append(instructions, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s ends inside a continued line", file)
	}
	return instructions, nil
}

// apply records what one instruction says of the image.
func (d *Dockerfile) apply(ins string) error {
	keyword, args, _ := strings.Cut(ins, " ")
	args = strings.TrimSpace(args)
	switch strings.ToUpper(keyword) {
	case "FROM":
		// A new stage: only the last one describes the image.
		fields := strings.Fields(args)
		for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
			fields = fields[1:]
		}
		if len(fields) == 0 {
			return fmt.Errorf("FROM without an image: %q", ins)
		}
		*d = Dockerfile{Base: fields[0], Labels: map[string]string{}, BuildRuns: d.BuildRuns}
	case "USER":
		d.User = args
	case "ENTRYPOINT":
		if err := json.Unmarshal([]byte(args), &d.Entrypoint); err != nil {
			return fmt.Errorf("ENTRYPOINT %s is not in exec form: %w", args, err)
		}
	case "COPY", "ADD":
		fields := strings.Fields(args)
		if len(fields) < 2 {
			return fmt.Errorf("%s without a destination: %q", keyword, ins)
		}
		d.CopyDests = append(d.CopyDests, fields[len(fields)-1])
	case "LABEL":
		if err := parseLabels(args, d.Labels); err != nil {
			return fmt.Errorf("%q: %w", ins, err)
		}
	case "RUN":
		d.BuildRuns = append(d.BuildRuns, args)
	}
	return nil
}

// parseLabels reads key=value pairs whose values may be double-quoted and hold spaces.
func parseLabels(s string, into map[string]string) error {
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		key, rest, ok := strings.Cut(s, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return fmt.Errorf("want key=value at %q", s)
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return fmt.Errorf("unterminated quote in label %s", key)
			}
			value, s = rest[1:end+1], rest[end+2:]
		} else {
			value, s, _ = strings.Cut(rest, " ")
		}
		into[key] = value
	}
	return nil
}
