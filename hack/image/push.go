package main

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// refNameAnnotation holds the version build wrote the layout for.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// push uploads the layout's image index to ref with the credentials of docker login (or crane auth
// login), and returns ref's repository at the pushed digest. A tag must be the version the layout was
// built for, so that a stale layout (another release's, or make image's) is not published as this one.
func push(ctx context.Context, layoutDir, ref string, opts ...remote.Option) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	idx, built, err := imageIndex(layoutDir)
	if err != nil {
		return "", err
	}
	if tag, ok := r.(name.Tag); ok && tag.TagStr() != built {
		return "", fmt.Errorf("%s holds the image of %q, not %q: build it for that version (make release or make image)",
			layoutDir, built, tag.TagStr())
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		return "", err
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Digest(d.String()).String(), nil
}

// imageIndex opens the one image index a layout written by build names, and the version it was built for.
func imageIndex(dir string) (v1.ImageIndex, string, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, "", fmt.Errorf("%w (run make image or make release first)", err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, "", err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	if len(m.Manifests) != 1 || m.Manifests[0].MediaType != types.OCIImageIndex {
		return nil, "", fmt.Errorf("%s: want one image index in index.json, found %d entries (run make image)",
			dir, len(m.Manifests))
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	return idx, m.Manifests[0].Annotations[refNameAnnotation], err
}
