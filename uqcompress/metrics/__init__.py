# TEMPORARY stub so the pipeline runs until the metrics branch (issue 9) is merged; replaced wholesale by it.
import numpy as np, torch, math
from sklearn.metrics import roc_auc_score
def _n(a): return a.detach().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, float)
def accuracy(p, y): return float((_n(p).argmax(1) == _n(y)).mean())
def calibration(p, y, n_bins=15):
    p=_n(p); y=_n(y).astype(int); return {"ece": 0.0, "nll": float(-np.log(p[np.arange(len(y)), y]+1e-12).mean()), "brier": 0.0}
def selective(c, correct, acc):
    correct=_n(correct).astype(bool); acc=_n(acc).astype(bool)
    return {"coverage": acc.mean(), "selective_risk": 1-correct[acc].mean(), "saved_rate": (~correct[~acc]).mean() if (~acc).any() else float('nan'), "error_catch_rate": 0.0}
def aurc(c, correct): return {"aurc": 0.0, "eaurc": 0.0}
def ood(ci, co):
    s=np.r_[-_n(ci), -_n(co)]; l=np.r_[np.zeros(len(ci)), np.ones(len(co))]; return {"auroc": roc_auc_score(l,s), "fpr95": 0.0, "aupr_in": 0.0, "aupr_out": 0.0}
def flips(pb, pc, y):
    b=_n(pb).argmax(1); c=_n(pc).argmax(1); y=_n(y); c2i=((b==y)&(c!=y)).mean(); i2c=((b!=y)&(c==y)).mean(); af=(b!=c).mean()
    return {"flips": c2i+i2c, "c2i": c2i, "i2c": i2c, "all_flips": af, "agreement": 1-af}
def kl_from_logits(a, b):
    la=torch.log_softmax(a.double(),-1); lb=torch.log_softmax(b.double(),-1); return float((la.exp()*(la-lb)).sum(-1).mean())
def js_from_logits(a,b): return 0.0
def risk_coverage_curve(c, correct):
    c=_n(c); correct=_n(correct); o=np.argsort(-c); e=np.cumsum(1-correct[o]); n=np.arange(1,len(c)+1); return n/len(c), e/n
def spearman(x,y):
    from scipy.stats import spearmanr; return float(spearmanr(x,y)[0])
def bootstrap_ci(fn, *arrays, n_boot=1000, alpha=0.05, seed=0):
    rng=np.random.default_rng(seed); n=len(arrays[0]); v=[fn(*[a[i] for a in arrays]) for i in (rng.integers(0,n,n) for _ in range(n_boot))]
    return float(np.percentile(v,100*alpha/2)), float(np.percentile(v,100*(1-alpha/2)))
