package main

import (
	"testing"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// The helper reads the URL from the key the operator publishes it under.
func TestDefaultURLEnvIsThePublishedKey(t *testing.T) {
	if defaultURLEnv != downloadsv1alpha1.KeySignedURL {
		t.Fatalf("fetch reads $%s by default; the operator publishes the URL as %s",
			defaultURLEnv, downloadsv1alpha1.KeySignedURL)
	}
}
