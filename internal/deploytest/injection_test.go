package deploytest

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pixxel-space/taskdownload-operator/internal/injection"
)

// flagValue returns the value of --name=value among args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func grantsWebhookConfigurations(objs []*unstructured.Unstructured) bool {
	for _, o := range objs {
		rules, _ := o.Object["rules"].([]any)
		for _, r := range rules {
			res, _ := r.(map[string]any)["resources"].([]any)
			for _, x := range res {
				if x == "mutatingwebhookconfigurations" {
					return true
				}
			}
		}
	}
	return false
}

// checkInjectionWiring: the names the manager is given are those of the objects installed beside it,
// and only pods that ask for injection, outside the operator's namespace, reach the webhook.
// Flags missing from the manager's arguments take their value from defaults.
func checkInjectionWiring(g Gomega, t *testing.T, objs []*unstructured.Unstructured, namespace string,
	defaults map[string]string) (args []string, secret string) {
	deploy := find(objs, "Deployment", nil)
	manager := managerContainer(t, deploy)
	args = stringSlice(manager, "args")
	for flag, def := range defaults {
		g.Expect(flagValue(args, flag)).To(BeEmpty(), "--%s is left to its default", flag)
		args = append(args, "--"+flag+"="+def)
	}
	g.Expect(args).To(ContainElements("--enable-injection", "--enable-scheduling-gates"))
	image, _ := manager["image"].(string)
	g.Expect(flagValue(args, "injection-image")).To(Equal(image), "fetch runs from the manager's own image")

	config := find(objs, "MutatingWebhookConfiguration", nil)
	g.Expect(config).NotTo(BeNil())
	g.Expect(config.GetName()).To(Equal(flagValue(args, "injection-webhook-configuration")))
	hooks, _, _ := unstructured.NestedSlice(config.Object, "webhooks")
	g.Expect(hooks).To(HaveLen(1))
	hook := hooks[0].(map[string]any)
	g.Expect(hook["failurePolicy"]).To(Equal("Fail"))
	g.Expect(hook["objectSelector"]).To(Equal(map[string]any{
		"matchLabels": map[string]any{"downloads.pixxel.space/inject": "true"}}))
	g.Expect(hook["namespaceSelector"]).To(HaveKeyWithValue("matchExpressions", ContainElement(map[string]any{
		"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": []any{namespace}})))
	rules, _ := hook["rules"].([]any)
	g.Expect(rules).To(ConsistOf(HaveKeyWithValue("operations", []any{"CREATE"})))
	service, _, _ := unstructured.NestedMap(hook, "clientConfig", "service")
	g.Expect(service).To(HaveKeyWithValue("name", flagValue(args, "injection-service")))
	g.Expect(service).To(HaveKeyWithValue("namespace", namespace))
	svc := find(objs, "Service", named(flagValue(args, "injection-service")))
	g.Expect(svc).NotTo(BeNil())
	selector, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	g.Expect(selector).NotTo(BeEmpty())
	for k, v := range selector {
		g.Expect(podLabels).To(HaveKeyWithValue(k, v), "the webhook Service selects the manager's pods")
	}
	ports, _ := manager["ports"].([]any)
	g.Expect(ports).To(ContainElement(HaveKeyWithValue("name", "webhook-server")))

	volumes, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
	for _, v := range volumes {
		if v.(map[string]any)["name"] == "webhook-cert" {
			secret, _, _ = unstructured.NestedString(v.(map[string]any), "secret", "secretName")
		}
	}
	g.Expect(secret).To(Equal(flagValue(args, "injection-cert-secret")), "the manager mounts the Secret it writes")
	return args, secret
}

func TestChartInjection(t *testing.T) {
	g := NewWithT(t)
	off := helmTemplate(t, "--set", "operator.schedulingGates=true")
	g.Expect(find(off, "MutatingWebhookConfiguration", nil)).To(BeNil())
	g.Expect(grantsWebhookConfigurations(off)).To(BeFalse(), "no webhook RBAC unless enabled")

	on := helmTemplate(t, "--set", "operator.schedulingGates=true", "--set", "injection.enabled=true")
	args, secret := checkInjectionWiring(g, t, on, releaseNamespace, nil)
	g.Expect(args).NotTo(ContainElement("--injection-cert-rotation=false"))
	g.Expect(find(on, "Secret", named(secret))).NotTo(BeNil(), "the Secret the rotation writes exists")
	g.Expect(grantsWebhookConfigurations(on)).To(BeTrue())

	cm := helmTemplate(t, "--set", "operator.schedulingGates=true", "--set", "injection.enabled=true",
		"--set", "injection.certManager.enabled=true")
	args, secret = checkInjectionWiring(g, t, cm, releaseNamespace, nil)
	g.Expect(args).To(ContainElement("--injection-cert-rotation=false"))
	cert := find(cm, "Certificate", func(o *unstructured.Unstructured) bool { return o.GetName() == secret })
	g.Expect(cert).NotTo(BeNil())
	g.Expect(cert.Object["spec"]).To(HaveKeyWithValue("secretName", secret))
	g.Expect(cert.Object["spec"]).To(HaveKeyWithValue("dnsNames", ContainElement(
		flagValue(args, "injection-service")+"."+releaseNamespace+".svc")))
	g.Expect(find(cm, "MutatingWebhookConfiguration", nil).GetAnnotations()).To(HaveKeyWithValue(
		"cert-manager.io/inject-ca-from", releaseNamespace+"/"+cert.GetName()))
	g.Expect(grantsWebhookConfigurations(cm)).To(BeFalse(), "cert-manager's CA injector patches the caBundle")
	// The serving certificate comes from a CA of the release's own, not straight from a self-signed
	// issuer: the caBundle must not change when the serving certificate is renewed.
	issuerName, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	issuer := find(cm, "Issuer", func(o *unstructured.Unstructured) bool { return o.GetName() == issuerName })
	g.Expect(issuer).NotTo(BeNil())
	caSecret, _, _ := unstructured.NestedString(issuer.Object, "spec", "ca", "secretName")
	ca := find(cm, "Certificate", func(o *unstructured.Unstructured) bool { return o.GetName() != cert.GetName() })
	g.Expect(ca).NotTo(BeNil())
	g.Expect(ca.Object["spec"]).To(And(HaveKeyWithValue("isCA", true), HaveKeyWithValue("secretName", caSecret)))

	// With a NetworkPolicy, the API server may still reach the webhook port.
	np := helmTemplate(t, "--set", "operator.schedulingGates=true", "--set", "injection.enabled=true",
		"--set", "networkPolicy.enabled=true")
	policy := find(np, "NetworkPolicy", named("allow-webhook-traffic"))
	g.Expect(policy).NotTo(BeNil())
	ingress, _, _ := unstructured.NestedSlice(policy.Object, "spec", "ingress")
	g.Expect(ingress).To(ConsistOf(HaveKeyWithValue("ports", ConsistOf(HaveKeyWithValue("port", BeNumerically("==", 9443))))))
	g.Expect(ingress[0]).NotTo(HaveKey("from"), "from anywhere: the API server's address varies")

	// Only the watched namespaces' pods reach the webhook.
	ns := helmTemplate(t, append(namespacedArgs, "--set", "operator.schedulingGates=true", "--set", "injection.enabled=true")...)
	hooks, _, _ := unstructured.NestedSlice(find(ns, "MutatingWebhookConfiguration", nil).Object, "webhooks")
	g.Expect(hooks[0].(map[string]any)["namespaceSelector"]).To(HaveKeyWithValue("matchExpressions", ContainElement(
		map[string]any{"key": "kubernetes.io/metadata.name", "operator": "In", "values": []any{"team-a", "team-b"}})))

	_, stderr, err := run(t, "helm", templateArgs("td", "--set", "injection.enabled=true")...)
	g.Expect(err).To(HaveOccurred())
	g.Expect(stderr).To(ContainSubstring("injection.enabled needs operator.schedulingGates=true"))
}

// TestKustomizeInjectionComponent: config/components/injection wires the same way after config/default's
// name prefix and namespace; the names it leaves to the manager's flag defaults are its objects' names.
func TestKustomizeInjectionComponent(t *testing.T) {
	g := NewWithT(t)
	objs := render(t, "kustomize", "build", overlay(t, nil, "config/components/injection"))
	checkInjectionWiring(g, t, objs, find(objs, "Deployment", nil).GetNamespace(), map[string]string{
		"injection-webhook-configuration": injection.DefaultWebhookConfiguration,
		"injection-service":               injection.DefaultService,
		"injection-cert-secret":           injection.DefaultCertSecret,
	})
}
